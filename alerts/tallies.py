"""Alert counts for the dashboard without counting every alert (issue 17): from
:class:`~alerts.models.AlertTally` on PostgreSQL, where a trigger keeps it exact in the writing transaction;
straight from the alerts elsewhere (SQLite, the embedded mode, has no trigger and small tenants).

The trigger that keeps them is installed by migration ``alerts.0010_alert_tally``; :func:`rebuild_tallies`
recounts the table from the alerts (the migration's backfill, and bulk loaders that load alerts with the
trigger off).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from core.models import Tenant

from .models import Alert, AlertTally, AlertUserDay

REBUILD_SQL = """
DELETE FROM alerts_alerttally;
INSERT INTO alerts_alerttally (tenant_id, hour, status, severity, count)
SELECT tenant_id, date_trunc('hour', first_activity_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', status,
       severity, count(*)
FROM alerts_alert GROUP BY 1, 2, 3, 4;
"""
REBUILD_USER_DAYS_SQL = """
DELETE FROM alerts_alertuserday;
INSERT INTO alerts_alertuserday (tenant_id, mailbox_id, day, total, open)
SELECT tenant_id, mailbox_id, date_trunc('day', last_activity_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
       count(*), count(*) FILTER (WHERE status <> 'resolved')
FROM alerts_alert GROUP BY 1, 2, 3;
"""


def tallied() -> bool:
    """Whether the tallies are kept (PostgreSQL, with its trigger) rather than counted from the alerts."""
    return connection.vendor == "postgresql"


def rebuild_tallies() -> None:
    """Recount every tally from the alerts, in one statement pair (call it inside a transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(REBUILD_SQL)
        cursor.execute(REBUILD_USER_DAYS_SQL)


def _tenant_filter(tenant: Tenant | None) -> dict[str, Tenant]:
    return {"tenant": tenant} if tenant else {}


def counts_by_status_and_severity(tenant: Tenant | None) -> dict[tuple[str, str], int]:
    """Every alert (of ``tenant``, or of all tenants), counted by (status, severity)."""
    if tallied():
        rows: Iterable[tuple[str, str, int]] = (
            AlertTally.objects.filter(**_tenant_filter(tenant))
            .values_list("status", "severity")
            .annotate(n=Sum("count"))
            .order_by()
        )
    else:
        rows = (
            Alert.objects.filter(**_tenant_filter(tenant))
            .values_list("status", "severity")
            .annotate(n=Count("id"))
            .order_by()
        )
    return {(status, severity): n for status, severity, n in rows if n}


def hourly_counts(tenant: Tenant | None, since: datetime) -> dict[tuple[datetime, str], int]:
    """Alerts whose first activity is in an hour starting at or after ``since`` (an hour's start, UTC),
    counted by (that hour, severity)."""
    if tallied():
        rows: Iterable[tuple[datetime, str, int]] = (
            AlertTally.objects.filter(hour__gte=since, **_tenant_filter(tenant))
            .values_list("hour", "severity")
            .annotate(n=Sum("count"))
            .order_by()
        )
    else:
        rows = (
            Alert.objects.filter(first_activity_at__gte=since, **_tenant_filter(tenant))
            .annotate(hour=TruncHour("first_activity_at"))
            .values_list("hour", "severity")
            .annotate(n=Count("id"))
            .order_by()
        )
    return {(hour, severity): n for hour, severity, n in rows if n}


@dataclass(frozen=True)
class UserCount:
    mailbox_id: int
    total: int
    open: int


TOP_DEPTH = 40  # users read from each day's best before deciding


def top_users(tenant: Tenant | None, since: datetime, limit: int) -> list[UserCount]:
    """The ``limit`` mailboxes with the most alerts whose last activity is at or after ``since`` (a day's
    start, UTC), most first, with how many of those are still open. Each count is exact and no mailbox left
    out has more alerts than one shown; among mailboxes tied at the last place, which are shown is not
    defined (the order within the list breaks ties by mailbox id).

    Without grouping every recent alert: it reads the busiest :data:`TOP_DEPTH` users of each day from the
    per-user days, then sums those candidates' days. A user outside every day's top has at most the sum of
    each day's last count read; once ``limit`` candidates have at least that much in the rows read, no one
    else can rank higher (the threshold algorithm of Fagin, Lotem and Naor). When they have not (many users
    tied near the top), the second query sums every user's days instead. Two queries either way.
    """
    if not tallied():
        rows = (
            Alert.objects.filter(last_activity_at__gte=since, **_tenant_filter(tenant))
            .values_list("mailbox_id")
            .annotate(n=Count("id"), open=Count("id", filter=~Q(status=Alert.Status.RESOLVED)))
            .order_by("-n", "mailbox_id")[:limit]
        )
        return [UserCount(mailbox_id, n, open_) for mailbox_id, n, open_ in rows]
    days = AlertUserDay.objects.filter(day__gte=since, **_tenant_filter(tenant))
    day_starts = [since + timedelta(days=n) for n in range((timezone.now() - since).days + 1)]
    with connection.cursor() as cursor:
        cursor.execute(
            BEST_OF_EACH_DAY_SQL.format(tenant="AND tenant_id = %s" if tenant else ""),
            [day_starts, *([tenant.pk] if tenant else []), TOP_DEPTH],
        )
        best = cursor.fetchall()
    per_day = Counter(day for day, _, _ in best)
    threshold = sum(total for day, _, total in _last_of_each_day(best) if per_day[day] == TOP_DEPTH)
    seen: Counter[int] = Counter()
    for _, mailbox_id, total in best:
        seen[mailbox_id] += total
    lower_bounds = sorted(seen.values(), reverse=True)
    if threshold and (len(lower_bounds) < limit or lower_bounds[limit - 1] < threshold):
        days_read = days  # too many ties near the top to decide from the best of each day: sum everyone's
    else:
        days_read = days.filter(mailbox_id__in=seen)
    sums = (
        days_read.values_list("mailbox_id")
        .annotate(n=Sum("total"), open=Sum("open"))
        .filter(n__gt=0)
        .order_by("-n", "mailbox_id")[:limit]
    )
    return [UserCount(mailbox_id, n, open_) for mailbox_id, n, open_ in sums]


# Each day's ``depth`` busiest users, in one statement (``{tenant}``: an optional tenant condition).
BEST_OF_EACH_DAY_SQL = """
SELECT d.day, t.mailbox_id, t.total
FROM unnest(%s::timestamptz[]) AS d(day)
CROSS JOIN LATERAL (
    SELECT mailbox_id, total FROM alerts_alertuserday
    WHERE day = d.day {tenant} AND total > 0 ORDER BY total DESC LIMIT %s
) AS t
ORDER BY d.day, t.total DESC
"""


def _last_of_each_day(rows: list[tuple[datetime, int, int]]) -> list[tuple[datetime, int, int]]:
    """The last (smallest) row of each day in rows sorted by day, then by total descending."""
    last: dict[datetime, tuple[datetime, int, int]] = {}
    for row in rows:
        last[row[0]] = row
    return list(last.values())
