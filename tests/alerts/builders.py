"""Telemetry for the detector tests, built as ingest events (contract v1) and stored through the real ingest
service, so the rows the detectors read are exactly what production stores.

    t = Telemetry(tenant)
    t.mailbox("alice@contoso.example", at=DAY_1)
    t.message("alice@contoso.example", at=NOON, external=300)
    t.ingest()
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from mailboxes.models import Mailbox
from mailflow.ingest import ingest_events
from tests.builders import Clock, iso

HOME = "contoso.example"
OUTSIDE = "fabrikam.example"
# The detector tests' frozen "now": a Tuesday evening, so "today" has a working day behind it.
NOW = datetime(2031, 3, 4, 18, 0, tzinfo=UTC)


CLOCK = Clock(NOW, default_hour=9)
today = CLOCK.today
days_ago = CLOCK.days_ago


class Telemetry:
    """Collects events with unique ids; :meth:`ingest` stores them in one strict batch and fails loudly on any
    error, so a test never runs on telemetry that was silently dropped."""

    def __init__(self, tenant) -> None:
        self.tenant = tenant
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def _add(self, event: dict[str, Any], event_id: str | None, prefix: str) -> str:
        event["id"] = event_id or f"{prefix}-{next(self._ids)}"
        self.events.append(event)
        return event["id"]

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

    def message(
        self,
        sender: str,
        *,
        at: datetime,
        external: int = 0,
        internal: int = 0,
        verdict: str = "clean",
        event_id: str | None = None,
    ) -> str:
        """A message to ``external`` recipients outside and ``internal`` recipients in the home domain."""
        recipients = [f"ext{i}@{OUTSIDE}" for i in range(external)] + [
            f"int{i}@{HOME}" for i in range(internal)
        ]
        event = {
            "type": "message",
            "time": iso(at),
            "sender": sender,
            "recipients": recipients,
            "subject": "Quarterly update",
            "verdict": verdict,
        }
        return self._add(event, event_id, "msg")

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
