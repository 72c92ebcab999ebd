from celery import shared_task

from .retention import purge_expired
from .services import record_heartbeat


@shared_task(name="core.beat_heartbeat", ignore_result=True)
def beat_heartbeat() -> None:
    """Periodic: proves beat and a beat-queue worker are alive (read by /healthz)."""
    record_heartbeat("beat")


@shared_task(name="core.beat_purge_telemetry", ignore_result=True)
def beat_purge_telemetry() -> None:
    """Periodic: delete telemetry older than its retention window (:func:`core.retention.purge_expired`;
    batched, so it can run beside ingest, and a second run finds nothing left to do)."""
    purge_expired()
