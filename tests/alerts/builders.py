"""Telemetry for the detector tests, built as ingest events (contract v1) and stored through the real ingest
service, so the rows the detectors read are exactly what production stores.

    t = Telemetry(tenant)
    t.mailbox("alice@contoso.example", at=DAY_1)
    t.message("alice@contoso.example", at=NOON, external=300)
    t.ingest()
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mailboxes.models import Mailbox
from mailflow.ingest import ingest_events
from tests.builders import Clock, iso

# HOME and OUTSIDE are re-exported: this package's tests import them from here.
from tests.builders.telemetry import HOME as HOME
from tests.builders.telemetry import OUTSIDE as OUTSIDE
from tests.builders.telemetry import TelemetryBase

# The detector tests' frozen "now": a Tuesday evening, so "today" has a working day behind it.
NOW = datetime(2031, 3, 4, 18, 0, tzinfo=UTC)


CLOCK = Clock(NOW, default_hour=9)
today = CLOCK.today
days_ago = CLOCK.days_ago


class Telemetry(TelemetryBase):
    """Collects events with unique ids; :meth:`ingest` stores them in one strict batch and fails loudly on any
    error, so a test never runs on telemetry that was silently dropped."""

    @classmethod
    def with_mailboxes(cls, tenant, *addresses: str, at: datetime) -> Telemetry:
        """Telemetry whose ``addresses`` exist (a ``mailbox`` event each, at ``at``), already ingested."""
        telemetry = cls(tenant)
        for address in addresses:
            telemetry.mailbox(address, at=at)
        telemetry.ingest()
        return telemetry

    def mailbox(
        self, address: str, *, at: datetime, department: str = "", event_id: str | None = None
    ) -> str:
        event = {
            "type": "mailbox",
            "time": iso(at),
            "address": address,
            "display_name": address.split("@")[0],
        }
        if department:
            event["department"] = department
        return self._add(event, event_id, "mbx")

    def messages(self, sender: str, times: list[datetime], **kwargs: Any) -> list[str]:
        return [self.message(sender, at=at, **kwargs) for at in times]

    def inbox_rule(
        self,
        mailbox: str,
        *,
        at: datetime,
        actions: dict[str, Any],
        conditions: dict[str, Any] | None = None,
        operation: str = "created",
        rule_id: str = "rule-1",
        name: str = "Rule",
        enabled: bool = True,
        event_id: str | None = None,
    ) -> str:
        event = {
            "type": "inbox_rule",
            "time": iso(at),
            "mailbox": mailbox,
            "operation": operation,
            "rule_id": rule_id,
            "name": name,
            "conditions": conditions or {},
            "actions": actions,
            "enabled": enabled,
        }
        return self._add(event, event_id, "rule")

    def forwarding(
        self,
        mailbox: str,
        forward_to: str | None,
        *,
        at: datetime,
        keep_copy: bool = True,
        event_id: str | None = None,
    ) -> str:
        event = {
            "type": "forwarding",
            "time": iso(at),
            "mailbox": mailbox,
            "forward_to": forward_to,
            "keep_copy": keep_copy,
        }
        return self._add(event, event_id, "fwd")

    def delegation(
        self,
        mailbox: str,
        delegate: str,
        access: str,
        *,
        at: datetime,
        operation: str = "added",
        event_id: str | None = None,
    ) -> str:
        event = {
            "type": "delegation",
            "time": iso(at),
            "mailbox": mailbox,
            "delegate": delegate,
            "access": access,
            "operation": operation,
        }
        return self._add(event, event_id, "dlg")

    def sign_in(
        self,
        user: str,
        *,
        at: datetime,
        country: str,
        client_app: str = "browser",
        result: str = "success",
        ip: str = "203.0.113.10",
        event_id: str | None = None,
    ) -> str:
        event = {
            "type": "sign_in",
            "time": iso(at),
            "user": user,
            "ip": ip,
            "country": country,
            "client_app": client_app,
            "result": result,
        }
        return self._add(event, event_id, "sgn")

    def ingest(self):
        """Store the collected events in one strict batch; returns the ingest result."""
        result = ingest_events(self.tenant, self.events, mode="strict", source="api")
        assert result.ok, result.errors
        assert not result.conflicts, result.conflicts
        self.events = []
        return result


def mailbox_of(tenant, address: str) -> Mailbox:
    return Mailbox.objects.get(tenant=tenant, address=address.lower())


def alert_citing(tenant, address: str, kind: str, *, event_kind: str, event_id: str):
    """An alert of ``kind`` on ``address``'s mailbox whose one piece of evidence is the stored event
    ``event_id`` (of ``event_kind``), raised through the real service."""
    from tests.builders import make_alert

    return make_alert(tenant, mailbox_of(tenant, address), kind, event_kind=event_kind, event_ids=[event_id])


def evaluate(tenant, *results) -> int:
    """Run every detector for what the ingest results touched, over their event-time range, as the
    ``alerts.evaluate`` task does after a batch commits."""
    from alerts.services import evaluate_mailboxes

    ids = set().union(*(r.affected_mailbox_ids for r in results))
    start = min(r.time_range[0] for r in results)
    end = max(r.time_range[1] for r in results)
    return evaluate_mailboxes(tenant.pk, ids, start, end)


def alerts_of(tenant, kind: str, address: str | None = None):
    """The alerts of one policy kind (and one user), oldest first."""
    from alerts.models import Alert

    alerts = Alert.objects.filter(tenant=tenant, policy__kind=kind)
    if address is not None:
        alerts = alerts.filter(mailbox__address=address.lower())
    return list(alerts.order_by("first_activity_at", "id"))


def evidence_ids(alert) -> list[str]:
    return list(alert.evidence.order_by("at", "event_id").values_list("event_id", flat=True))
