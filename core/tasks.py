from .queueing import domain_task
from .retention import ensure_partitions, purge_expired
from .services import record_heartbeat


@domain_task("core.beat_heartbeat")
def beat_heartbeat() -> None:
    """Periodic: proves beat and a beat-queue worker are alive (read by /healthz)."""
    record_heartbeat("beat")


@domain_task("core.beat_purge_telemetry")
def beat_purge_telemetry() -> None:
    """Periodic: delete telemetry older than its retention window (:func:`core.retention.purge_expired`;
    batched, so it can run beside ingest, and a second run finds nothing left to do)."""
    purge_expired()


@domain_task("core.beat_ensure_partitions")
def beat_ensure_partitions() -> None:
    """Periodic: create the telemetry partitions of the retention window and the days ahead (PostgreSQL;
    :func:`core.retention.ensure_partitions`). Idempotent; ingest never waits for it (a default partition
    takes rows no partition covers yet)."""
    ensure_partitions()
