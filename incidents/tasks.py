"""Celery tasks of the incidents app (queue ``evaluate``): thin, idempotent wrappers over the correlation
services. Lower apps enqueue them by name on commit; a redelivery finds the object linked and adds nothing."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from . import services

_RETRY = {
    "acks_late": True,
    "ignore_result": True,
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "max_retries": 5,
}


@shared_task(name="incidents.correlate_alert", **_RETRY)
def correlate_alert(alert_id: int) -> None:
    """Put a new (or folded) alert in its user's incident."""
    services.correlate_alert(alert_id)


@shared_task(name="incidents.correlate_restriction", **_RETRY)
def correlate_restriction(restriction_id: int) -> None:
    """Put a new restriction in its user's incident."""
    services.correlate_restriction(restriction_id)


@shared_task(name="incidents.correlate_investigation", **_RETRY)
def correlate_investigation(investigation_id: int) -> None:
    """Put a new investigation in its user's incident."""
    services.correlate_investigation(investigation_id)
