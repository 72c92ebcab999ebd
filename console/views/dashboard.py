"""The Alerts dashboard: open alerts by severity, alerts by status, the 24-hour and 7-day trends, restricted
users and the most-alerted users. A fixed handful of aggregate queries, whatever the number of alerts."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDay, TruncHour
from django.urls import reverse
from django.utils import timezone

from alerts.filtersets import PERIODS
from alerts.models import Alert, Severity
from core.models import Tenant
from restricted_users.models import Restriction

from ..charts import BarChart, bar_chart, buckets
from .pages import ConsolePage

TOP_USERS = 10
TOP_USERS_PERIOD = "7d"


def alert_list_url(**params: object) -> str:
    """The alert list filtered by ``params`` (empty values left out)."""
    query = urlencode({key: value for key, value in params.items() if value not in (None, "")})
    return reverse("console:alert_list") + (f"?{query}" if query else "")


def _trend(alerts: QuerySet[Alert], now: datetime, *, hourly: bool) -> BarChart:
    step, count, trunc = (timedelta(hours=1), 24, TruncHour) if hourly else (timedelta(days=1), 7, TruncDay)
    current = now.replace(minute=0, second=0, microsecond=0)
    if not hourly:
        current = current.replace(hour=0)
    starts = buckets(current, step, count)
    counts = dict(
        alerts.filter(created_at__gte=starts[0])
        .annotate(bucket=trunc("created_at"))
        .values_list("bucket")
        .annotate(n=Count("id"))
    )
    if hourly:
        points = [(f"{start:%H}:00", counts.get(start, 0)) for start in starts]
        return bar_chart("Alerts created per hour, last 24 hours (UTC)", points, tick_every=3)
    points = [(f"{start:%a} {start.day} {start:%b}", counts.get(start, 0)) for start in starts]
    return bar_chart("Alerts created per day, last 7 days (UTC)", points)


def _counts(queryset: QuerySet[Alert], field: str, choices, **filters: object) -> list[dict]:
    """One grouped count over ``field``: each choice, its number and the alert list of those alerts."""
    counts = dict(queryset.values_list(field).annotate(n=Count("id")))
    return [
        {
            "value": value,
            "label": label,
            "count": counts.get(value, 0),
            "url": alert_list_url(**filters, **{field: value}),
        }
        for value, label in choices
    ]


def _top_users(alerts: QuerySet[Alert], now: datetime, tenant_id: int | None) -> list[dict]:
    """The users with the most alerts active in the last 7 days, each linking to those alerts."""
    rows = (
        alerts.filter(last_activity_at__gte=now - PERIODS[TOP_USERS_PERIOD])
        .values("mailbox__address", "mailbox__display_name")
        .annotate(n=Count("id"), open=Count("id", filter=~Q(status=Alert.Status.RESOLVED)))
        .order_by("-n", "mailbox__address")[:TOP_USERS]
    )
    return [
        {**row, "url": alert_list_url(user=row["mailbox__address"], last=TOP_USERS_PERIOD, tenant=tenant_id)}
        for row in rows
    ]


class DashboardView(ConsolePage):
    """Counts link to the alert list filtered the same way; ``?tenant=<id>`` narrows it all to one tenant."""

    template_name = "console/dashboard.html"
    permission_required = "alerts.view_alert"

    def get_context_data(self, **kwargs):
        now = timezone.now()
        tenants = list(Tenant.objects.all())
        tenant = next((t for t in tenants if str(t.pk) == self.request.GET.get("tenant")), None)
        alerts = Alert.objects.filter(tenant=tenant) if tenant else Alert.objects.all()
        restrictions = Restriction.objects.active().filter(**({"tenant": tenant} if tenant else {}))
        tenant_id = tenant.pk if tenant else None
        severities = _counts(alerts.open(), "severity", Severity.choices, status="open", tenant=tenant_id)
        return super().get_context_data(
            title="Alerts dashboard",
            tenants=tenants if len(tenants) > 1 else [],
            tenant=tenant,
            severities=severities,
            open_count=sum(s["count"] for s in severities),
            open_url=alert_list_url(status="open", tenant=tenant_id),
            statuses=_counts(alerts, "status", Alert.Status.choices, tenant=tenant_id),
            hourly=_trend(alerts, now, hourly=True),
            daily=_trend(alerts, now, hourly=False),
            restricted_count=restrictions.count(),
            top_users=_top_users(alerts, now, tenant_id),
            **kwargs,
        )
