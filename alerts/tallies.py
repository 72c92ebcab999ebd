"""Alert counts for the dashboard without counting every alert (issue 17): from
:class:`~alerts.models.AlertTally` on PostgreSQL, where a trigger keeps it exact in the writing transaction;
straight from the alerts elsewhere (SQLite, the embedded mode, has no trigger and small tenants).

The trigger that keeps them is installed by migration ``alerts.0010_alert_tally``; :func:`rebuild_tallies`
recounts the table from the alerts (the migration's backfill, and bulk loaders that load alerts with the
trigger off).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import connection
from django.db.models import Count, Sum
from django.db.models.functions import TruncHour

from core.models import Tenant

from .models import Alert, AlertTally

REBUILD_SQL = """
DELETE FROM alerts_alerttally;
INSERT INTO alerts_alerttally (tenant_id, hour, status, severity, count)
SELECT tenant_id, date_trunc('hour', first_activity_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', status,
       severity, count(*)
FROM alerts_alert GROUP BY 1, 2, 3, 4;
"""


def tallied() -> bool:
    """Whether the tallies are kept (PostgreSQL, with its trigger) rather than counted from the alerts."""
    return connection.vendor == "postgresql"


def rebuild_tallies() -> None:
    """Recount every tally from the alerts, in one statement pair (call it inside a transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(REBUILD_SQL)


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
