"""Telemetry for the playbook tests, built as ingest events (contract v1) and stored through the real ingest
service, then run through the real detectors, so investigations see exactly what production stores.

    t = Telemetry(tenant)
    t.mailbox(ALICE)
    t.message(ALICE, at=hours_ago(2), external=3, verdict="phish", urls=["https://evil.example/login"])
    t.ingest()
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from investigations.models import Investigation
from mailboxes.models import Mailbox
from mailflow.ingest import IngestResult, ingest_events
from tests.builders import Clock

# The addresses are re-exported: this package's tests import them from here.
from tests.builders.telemetry import ALICE as ALICE
from tests.builders.telemetry import BOB as BOB
from tests.builders.telemetry import CAROL as CAROL
from tests.builders.telemetry import HOME as HOME
from tests.builders.telemetry import OUTSIDE as OUTSIDE
from tests.builders.telemetry import TelemetryBase

# A Tuesday, 12:00 UTC: the playbook's "now" in every test that travels in time.
NOW = datetime(2031, 3, 4, 12, 0, tzinfo=UTC)
PERIOD_START = NOW - timedelta(days=30)


CLOCK = Clock(NOW, default_hour=10)
hours_ago = CLOCK.hours_ago
days_ago = CLOCK.days_ago


class Telemetry(TelemetryBase):
    """Collects events with unique ids; :meth:`ingest` stores them in one strict batch through the ingest
    service and fails loudly on any error, so no test runs on telemetry that was silently dropped."""

    def mailbox(self, address: str, *, at: datetime = PERIOD_START, **fields: Any) -> str:
        return self._add({"type": "mailbox", "time": at, "address": address, **fields}, None, "mbx")

    def rule(
        self, mailbox: str, rule_id: str, *, at: datetime, operation: str = "created", **state: Any
    ) -> str:
        event = {
            "type": "inbox_rule",
            "time": at,
            "mailbox": mailbox,
            "rule_id": rule_id,
            "operation": operation,
        }
        return self._add({**event, **state}, None, "rule")

    def forwarding(
        self, mailbox: str, forward_to: str | None, *, at: datetime, keep_copy: bool = False
    ) -> str:
        event = {"type": "forwarding", "time": at, "mailbox": mailbox, "forward_to": forward_to}
        return self._add({**event, "keep_copy": keep_copy}, None, "fwd")

    def delegation(
        self,
        mailbox: str,
        delegate: str,
        *,
        at: datetime,
        access: str = "full_access",
        operation: str = "added",
    ) -> str:
        event = {"type": "delegation", "time": at, "mailbox": mailbox, "delegate": delegate}
        return self._add({**event, "access": access, "operation": operation}, None, "dlg")

    def sign_in(
        self,
        user: str,
        *,
        at: datetime,
        ip: str = "198.51.100.7",
        country: str = "GB",
        client_app: str = "browser",
        result: str = "success",
    ) -> str:
        event = {"type": "sign_in", "time": at, "user": user, "ip": ip, "country": country}
        return self._add({**event, "client_app": client_app, "result": result}, None, "sgn")

    def everyday(self, address: str, *, days: int = 8, per_day: int = 4, sign_ins: bool = True) -> None:
        """An ordinary user: a few clean mails a working day to colleagues and one partner, a morning sign-in
        from home (GB) for the last ``days`` days before today."""
        for day in range(days, 0, -1):
            for n in range(per_day):
                self.message(
                    address, at=days_ago(day, 9 + n), internal=2, external=1, subject=f"Project note {n}"
                )
            if sign_ins:
                self.sign_in(address, at=days_ago(day, 8))

    def ingest(self) -> IngestResult:
        result = ingest_events(self.tenant, self.events)
        assert result.ok, result.summary()
        self.events = []
        return result

    def ingest_and_detect(self) -> IngestResult:
        """Store the batch; once it commits, the ingest service enqueues ``alerts.evaluate`` (in-process in
        these tests), whose alerts start investigations. Call it inside ``run_on_commit()``."""
        return self.ingest()


def mailbox(address: str) -> Mailbox:
    return Mailbox.objects.get(address=address)


def investigation_of(address: str) -> Investigation:
    """The user's only investigation (the tests assert there is exactly one)."""
    investigations = list(Investigation.objects.filter(mailbox__address=address))
    assert len(investigations) == 1, f"{address} has {len(investigations)} investigations"
    return investigations[0]


def proposals(investigation: Investigation) -> dict[str, list[dict]]:
    """Action type -> targets of the investigation's actions."""
    found: dict[str, list[dict]] = {}
    for action in investigation.actions.order_by("pk"):
        found.setdefault(action.action_type, []).append(action.target)
    return found


def now() -> datetime:
    return timezone.now()
