"""Builders every test package shares, each defined once: mailboxes, alerts and frozen-time helpers.

Data goes through the real services where a test's meaning depends on it (``make_alert`` raises through
``raise_alert``, as a detector would); ``make_quiet_alert`` writes an open alert row without the service, for
tests that must not start an investigation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from alerts.detection import Detection, Evidence
from alerts.models import Alert, AlertPolicy
from alerts.services import ensure_default_policies, raise_alert
from mailboxes.models import AcceptedDomain, Mailbox

ALICE = "alice@contoso.example"
_event_ids = itertools.count(1)


def make_mailbox(
    tenant,
    address: str = ALICE,
    *,
    display_name: str = "",
    department: str = "",
    accept_domain: bool = False,
) -> Mailbox:
    """A mailbox of ``tenant`` (address lower-cased); ``accept_domain`` also makes its domain accepted, so
    the directory services treat the address as internal."""
    address = address.lower()
    if accept_domain:
        AcceptedDomain.objects.get_or_create(tenant=tenant, domain=address.split("@")[1])
    return Mailbox.objects.create(
        tenant=tenant, address=address, display_name=display_name, department=department
    )


def policy_of(tenant, kind: str = AlertPolicy.Kind.SENDING_LIMIT) -> AlertPolicy:
    return ensure_default_policies(tenant)[kind]


def make_alert(
    tenant,
    mailbox: Mailbox,
    kind: str = AlertPolicy.Kind.FORWARDING,
    *,
    at: datetime | None = None,
    events: int = 1,
    event_kind: str = "forwarding",
    event_ids: list[str] | None = None,
    details: dict | None = None,
) -> Alert:
    """Raise (or fold into) an alert of ``kind`` for ``mailbox`` with ``events`` fresh evidence events."""
    at = at or timezone.now() - timedelta(minutes=5)
    ids = event_ids or [f"evt-{next(_event_ids)}" for _ in range(events)]
    detection = Detection(
        mailbox_id=mailbox.pk,
        evidence=[
            Evidence(event_kind, event_id, at + timedelta(seconds=i)) for i, event_id in enumerate(ids)
        ],
        details=details or {},
    )
    alerts = raise_alert(policy_of(tenant, kind), detection)
    assert alerts, "the alert was not raised (suppressed or duplicate evidence)"
    return alerts[-1]


def make_quiet_alert(
    tenant, mailbox: Mailbox, *, title: str = "Suspicious email forwarding activity"
) -> Alert:
    """An open forwarding alert written through the ORM, so that no investigation is started for it."""
    policy = policy_of(tenant, AlertPolicy.Kind.FORWARDING)
    now = timezone.now()
    return Alert.objects.create(
        tenant=tenant,
        policy=policy,
        mailbox=mailbox,
        title=title,
        severity=policy.severity,
        category=policy.category,
        first_activity_at=now - timedelta(hours=1),
        last_activity_at=now - timedelta(minutes=5),
        evidence_count=1,
    )


@dataclass(frozen=True)
class Clock:
    """A test package's frozen "now" and the times it names relative to it."""

    now: datetime
    default_hour: int

    def days_ago(self, days: float, hour: int | None = None) -> datetime:
        """``days`` before now, at ``hour`` o'clock (the package's default hour when not given)."""
        hour = self.default_hour if hour is None else hour
        return (self.now - timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)

    def hours_ago(self, hours: float) -> datetime:
        return self.now - timedelta(hours=hours)

    def today(self, hour: int, minute: int = 0) -> datetime:
        return self.now.replace(hour=hour, minute=minute, second=0, microsecond=0)


def iso(at: datetime) -> str:
    """A time as the ingest contract takes it (ISO 8601 with its offset)."""
    return at.isoformat()
