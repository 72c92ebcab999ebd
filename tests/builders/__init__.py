"""Builders every test package shares, each defined once: mailboxes, alerts and frozen-time helpers.

Data goes through the real services where a test's meaning depends on it (``make_alert`` raises through
``raise_alert``, as a detector would); ``make_quiet_alert`` writes an open alert row without the service, for
tests that must not start an investigation.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.detection import Detection, Evidence
from alerts.models import Alert, AlertPolicy
from alerts.services import ensure_default_policies, raise_alert
from mailboxes.models import AcceptedDomain, Mailbox

ALICE = "alice@contoso.example"
# Reads are open to every role and closed to a user in none: (client fixture, status), to parametrize with.
READ_ACCESS = [
    ("reader_client", 200),
    ("operator_client", 200),
    ("administrator_client", 200),
    ("nobody_client", 403),
]
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


def frozen_at(now: datetime) -> Callable[[], Iterator[None]]:
    """An autouse fixture that stops the clock at ``now`` for every test of a module, bound to a name there:
    ``frozen_time = frozen_at(NOW)``."""

    @pytest.fixture(autouse=True)
    def frozen() -> Iterator[None]:
        with time_machine.travel(now, tick=False):
            yield

    return frozen


def iso(at: datetime) -> str:
    """A time as the ingest contract takes it (ISO 8601 with its offset)."""
    return at.isoformat()


def api_client_for(user) -> APIClient:
    """A DRF test client authenticated as ``user`` (no session, no CSRF: as an API caller)."""
    client = APIClient()
    client.force_authenticate(user)
    return client


def audited_actions(target, *, actor) -> list[str]:
    """The audit actions ``actor`` wrote about ``target``, in the order they happened."""
    from core.models import AuditEvent

    events = AuditEvent.objects.for_target(target).filter(actor=actor).order_by("at", "id")
    return list(events.values_list("action", flat=True))


def assert_list_queries_do_not_grow(
    client, url: str, add_rows: Callable[[int, int], None], assert_max_num_queries
) -> None:
    """The list page at ``url`` costs no more queries with 50 rows than with 10. ``add_rows(count, start)``
    makes ``count`` more rows (numbered from ``start``); ``assert_max_num_queries`` is pytest-django's
    ``django_assert_max_num_queries`` fixture."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    add_rows(10, 0)
    with CaptureQueriesContext(connection) as ten:
        assert len(client.get(url).context["object_list"]) == 10
    add_rows(40, 10)
    with assert_max_num_queries(len(ten.captured_queries)):
        assert len(client.get(url).context["object_list"]) == 50


@contextmanager
def redis_without(*patterns: str) -> Iterator[Any]:
    """The test Redis db (the client the enforcement state uses) with no key matching ``patterns``, both
    when the block starts and after it."""
    from restricted_users import state

    client = state.get_redis()
    assert client is not None, "these tests need REDIS_URL"

    def clear() -> None:
        for pattern in patterns:
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)

    clear()
    try:
        yield client
    finally:
        clear()
