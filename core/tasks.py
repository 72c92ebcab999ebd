from celery import shared_task

from .services import record_heartbeat


@shared_task(name="core.beat_heartbeat", ignore_result=True)
def beat_heartbeat() -> None:
    """Periodic: proves beat and a beat-queue worker are alive (read by /healthz)."""
    record_heartbeat("beat")
