"""The dashboard's alert tallies (issue 17) stay equal to a recount of the alerts, whatever writes them: the
services raising, folding, triaging, resolving and reopening, a bulk ``update()``, a delete, a second tenant.
On PostgreSQL they are kept by a trigger (elsewhere the readers count the alerts themselves)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Count, Q
from django.db.models.functions import TruncDay, TruncHour

from alerts.models import Alert, AlertPolicy, AlertTally, AlertUserDay
from alerts.services import reopen_alert, resolve_alert, set_alert_status
from alerts.tallies import counts_by_status_and_severity, hourly_counts, rebuild_tallies, top_users
from tests.alerts.alert_builders import make_alert, make_mailbox
from tests.builders import frozen_at

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
WEEK_AGO = datetime(2026, 2, 23, 0, 0, tzinfo=UTC)


frozen_time = frozen_at(NOW)


def _recount(tenant=None) -> dict[tuple[str, str], int]:
    alerts = Alert.objects.filter(**({"tenant": tenant} if tenant else {}))
    return {
        (s, v): n for s, v, n in alerts.values_list("status", "severity").annotate(n=Count("id")).order_by()
    }


def _recount_hours(since: datetime) -> dict[tuple[datetime, str], int]:
    rows = (
        Alert.objects.filter(first_activity_at__gte=since)
        .annotate(hour=TruncHour("first_activity_at"))
        .values_list("hour", "severity")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {(hour, severity): n for hour, severity, n in rows}


@pytest.fixture
def busy(tenant, other_tenant, operator):
    """Alerts of two tenants moved through every kind of write."""
    alice, bob = make_mailbox(tenant, "alice@example.com"), make_mailbox(tenant, "bob@example.com")
    carol = make_mailbox(other_tenant, "carol@example.com")
    first = make_alert(tenant, alice, at=NOW - timedelta(hours=3))
    make_alert(tenant, alice, at=NOW - timedelta(hours=5, minutes=20))  # folds: its first activity moves back
    second = make_alert(tenant, bob, AlertPolicy.Kind.DELEGATION, at=NOW - timedelta(days=2))
    third = make_alert(tenant, bob, AlertPolicy.Kind.SIGN_IN, at=NOW - timedelta(days=9))
    make_alert(other_tenant, carol, at=NOW - timedelta(minutes=40))
    set_alert_status(second, actor=operator, status=Alert.Status.IN_PROGRESS)
    resolve_alert(first, actor=operator, classification=Alert.Classification.FALSE_POSITIVE)
    resolve_alert(third, actor=operator, classification=Alert.Classification.INFORMATIONAL)
    reopen_alert(Alert.objects.get(pk=third.pk), actor=operator, reason="remediation undone")
    Alert.objects.filter(pk=second.pk).update(severity="high", first_activity_at=NOW - timedelta(days=3))
    Alert.objects.filter(mailbox=alice).update(status=Alert.Status.NEW)
    make_alert(tenant, alice, AlertPolicy.Kind.SIGN_IN, at=NOW - timedelta(hours=1)).delete()
    return tenant, other_tenant


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
def test_the_trigger_keeps_the_tallies_equal_to_a_recount(busy):
    tenant, other = busy

    assert counts_by_status_and_severity(None) == _recount()
    assert counts_by_status_and_severity(tenant) == _recount(tenant)
    assert counts_by_status_and_severity(other) == _recount(other)
    assert hourly_counts(None, WEEK_AGO) == _recount_hours(WEEK_AGO)
    assert sum(AlertTally.objects.values_list("count", flat=True)) == Alert.objects.count()
    assert hourly_counts(tenant, WEEK_AGO)[(datetime(2026, 2, 27, 12, tzinfo=UTC), "high")] == 1  # moved


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
def test_a_rebuild_recounts_what_a_bulk_load_left_out(busy):
    AlertTally.objects.all().delete()

    rebuild_tallies()

    assert counts_by_status_and_severity(None) == _recount()


def _recount_user_days() -> dict[tuple[int, datetime], tuple[int, int]]:
    rows = (
        Alert.objects.annotate(day=TruncDay("last_activity_at"))
        .values_list("mailbox_id", "day")
        .annotate(n=Count("id"), open=Count("id", filter=~Q(status=Alert.Status.RESOLVED)))
        .order_by()
    )
    return {(mailbox_id, day): (n, open_) for mailbox_id, day, n, open_ in rows}


def _recount_top(since: datetime, limit: int) -> list[tuple[int, int, int]]:
    rows = (
        Alert.objects.filter(last_activity_at__gte=since)
        .values_list("mailbox_id")
        .annotate(n=Count("id"), open=Count("id", filter=~Q(status=Alert.Status.RESOLVED)))
        .order_by("-n", "mailbox_id")[:limit]
    )
    return list(rows)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
def test_the_trigger_keeps_the_user_days_equal_to_a_recount(busy):
    kept = {
        (row.mailbox_id, row.day): (row.total, row.open)
        for row in AlertUserDay.objects.all()
        if row.total or row.open
    }

    assert kept == _recount_user_days()


@pytest.fixture
def ranked(tenant, operator):
    """Users with 1 to 6 alerts over the last three days, one of them resolved each."""
    for n in range(1, 7):
        mailbox = make_mailbox(tenant, f"user{n}@example.com")
        for i in range(n):
            alert = make_alert(
                tenant, mailbox, AlertPolicy.Kind.SIGN_IN, at=NOW - timedelta(days=i % 3, hours=1 + i)
            )
        resolve_alert(alert, actor=operator, classification=Alert.Classification.FALSE_POSITIVE)


# Depth 1 and 3 users: too few candidates, the fallback sums everyone; depth 2 and the top user: the
# threshold is met by the candidates (or, as ties fall, the fallback); depth 40: every user is read.
@pytest.mark.parametrize(("depth", "limit"), [(1, 3), (2, 1), (40, 3)])
def test_the_most_alerted_users_are_those_of_a_recount(ranked, monkeypatch, depth, limit):
    monkeypatch.setattr("alerts.tallies.TOP_DEPTH", depth)

    top = top_users(None, WEEK_AGO, limit)

    assert [(u.mailbox_id, u.total, u.open) for u in top] == _recount_top(WEEK_AGO, limit)
    assert [u.total for u in top] == [6, 5, 4][:limit]
