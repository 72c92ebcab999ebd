"""Celery tasks of the incidents app (queue ``evaluate``): thin, idempotent wrappers over the correlation
services. Lower apps enqueue them by name on commit; a redelivery finds the object linked and adds nothing."""

from __future__ import annotations

from core.queueing import domain_task

from . import services


@domain_task("incidents.correlate_alert")
def correlate_alert(alert_id: int) -> None:
    """Put a new (or folded) alert in its user's incident."""
    services.correlate_alert(alert_id)


@domain_task("incidents.correlate_restriction")
def correlate_restriction(restriction_id: int) -> None:
    """Put a new restriction in its user's incident."""
    services.correlate_restriction(restriction_id)


@domain_task("incidents.correlate_investigation")
def correlate_investigation(investigation_id: int) -> None:
    """Put a new investigation in its user's incident."""
    services.correlate_investigation(investigation_id)
