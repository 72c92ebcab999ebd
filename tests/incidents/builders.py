"""Builders for the incident tests: alerts through the real ``raise_alert`` service with their on-commit tasks
run (so correlation happens the way a worker does it), and restrictions through the real service."""

from __future__ import annotations

from datetime import datetime

from alerts.models import Alert, AlertPolicy
from incidents.models import Incident
from tests.alerts.alert_builders import make_alert, make_mailbox

__all__ = ["alert_in_incident", "incident_of", "make_alert", "make_mailbox"]


def alert_in_incident(
    run_on_commit, tenant, mailbox, kind: str = AlertPolicy.Kind.FORWARDING, *, at: datetime | None = None
) -> Alert:
    """Raise an alert and run its on-commit tasks (correlation included)."""
    with run_on_commit():
        alert = make_alert(tenant, mailbox, kind, at=at)
    return alert


def incident_of(alert: Alert) -> Incident:
    return Incident.objects.get(alert_links__alert=alert)
