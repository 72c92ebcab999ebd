"""The Alerts dashboard: open alerts by severity, alerts by status, the 24-hour and 7-day trends,
investigations by status, pending actions (and the oldest one's wait), restricted users (the *Other alerts*
widget), the most-alerted users and the time-to-restrict / time-to-remediate medians. A fixed handful of
aggregate queries, whatever the number of alerts; every number links to the list it counts. An htmx request
(the 30-second self-refresh) gets the widgets alone."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from statistics import median
from typing import Any
from urllib.parse import urlencode

from django.db import connection
from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, OuterRef, QuerySet, Subquery
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from alerts.models import Alert, AlertQuerySet, Severity, severity_rank
from alerts.tallies import counts_by_status_and_severity, hourly_counts, top_users
from core.models import Tenant
from incidents.filtersets import with_counts
from incidents.models import Incident
from investigations.filtersets import PENDING, PERIODS
from investigations.models import Investigation, RemediationAction, RemediationActionQuerySet
from mailboxes.models import Mailbox
from restricted_users.filtersets import PLACED_PERIODS
from restricted_users.models import Restriction

from ..charts import StackedChart, buckets, stacked_chart
from .pages import ConsolePage

TOP_USERS = 10
RESTRICT_PERIOD = "7d"  # time to restrict: restrictions placed by a policy in the last 7 days
REMEDIATE_PERIOD = "30d"  # time to remediate: remediated investigations created in the last 30 days
MEDIAN_SAMPLE = 5000  # the medians read at most this many rows (the newest)
ACTIVE_INCIDENTS = 10  # the dashboard's first panel lists at most this many open incidents
VIEW_INCIDENT = "incidents.view_incident"


def list_url(name: str, **params: object) -> str:
    """The list page ``name`` filtered by ``params`` (``None`` left out; ``""`` kept: it means "any")."""
    query = urlencode({key: value for key, value in params.items() if value is not None})
    return reverse(name) + (f"?{query}" if query else "")


def alert_list_url(**params: object) -> str:
    """The alert list filtered by ``params`` (empty values left out)."""
    return list_url("console:alert_list", **{k: v for k, v in params.items() if v != ""})


SEVERITY_SERIES = tuple(
    (severity, Severity(severity).label)
    for severity in (Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFORMATIONAL)
)


def _trend(hours: dict[tuple[datetime, str], int], now: datetime, *, hourly: bool) -> StackedChart:
    """Alerts by when their activity began (not when the console created them: a backlog ingested at once
    would pile onto one bucket), stacked by severity, from the per-hour counts ``hours``."""
    step, count = (timedelta(hours=1), 24) if hourly else (timedelta(days=1), 7)
    current = now.replace(minute=0, second=0, microsecond=0)
    if not hourly:
        current = current.replace(hour=0)
    starts = buckets(current, step, count)
    counts: dict[datetime, dict[str, int]] = {}
    for (hour, severity), n in hours.items():
        bucket = hour if hourly else hour.replace(hour=0)
        per_severity = counts.setdefault(bucket, {})
        per_severity[severity] = per_severity.get(severity, 0) + n
    if hourly:
        points = [(f"{start:%H}:00", counts.get(start, {})) for start in starts]
        return stacked_chart(
            "Alerts by first activity per hour, last 24 hours (UTC)", points, SEVERITY_SERIES, tick_every=3
        )
    points = [(f"{start:%a} {start.day} {start:%b}", counts.get(start, {})) for start in starts]
    return stacked_chart("Alerts by first activity per day, last 7 days (UTC)", points, SEVERITY_SERIES)


def _trend_start(now: datetime) -> datetime:
    """The first hour either trend shows: midnight (UTC) six days ago, before the hourly chart's first."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=6)


ATTENTION_ROWS = 5


def _needs_attention(
    alerts: AlertQuerySet, actions: RemediationActionQuerySet, now: datetime, oldest: datetime | None
) -> dict:
    """What to look at first: open high-severity alerts (the oldest activity first, so none is forgotten) and
    the actions waiting for a decision, oldest first. ``oldest`` is when the oldest of those was proposed
    (from :func:`_pending_actions`): the index read starts there rather than at every Pending row that has
    expired unmarked before it."""
    high = alerts.open().filter(severity=Severity.HIGH).select_related("mailbox")
    waiting = actions.pending(now).filter(proposed_at__gte=oldest) if oldest else actions.none()
    return {
        "high_alerts": list(high.order_by("first_activity_at", "id")[:ATTENTION_ROWS]),
        "waiting_actions": list(
            waiting.select_related("investigation__mailbox").order_by("proposed_at", "id")[:ATTENTION_ROWS]
        ),
    }


def _counts(
    counts: dict[str, int], field: str, choices: Iterable[tuple[str, str]], **filters: object
) -> list[dict]:
    """Each choice of ``field``, its number in ``counts`` and the alert list of those alerts."""
    return [
        {
            "value": value,
            "label": label,
            "count": counts.get(value, 0),
            "url": alert_list_url(**filters, **{field: value}),
        }
        for value, label in choices
    ]


def _alert_counts(tenant: Tenant | None) -> tuple[dict[str, int], dict[str, int]]:
    """Open alerts by severity, and every alert by status (one read of the tallies)."""
    open_by_severity: dict[str, int] = {}
    by_status: dict[str, int] = {}
    for (status, severity), n in counts_by_status_and_severity(tenant).items():
        by_status[status] = by_status.get(status, 0) + n
        if status != Alert.Status.RESOLVED:
            open_by_severity[severity] = open_by_severity.get(severity, 0) + n
    return open_by_severity, by_status


def _top_users(now: datetime, tenant: Tenant | None, tenant_id: int | None) -> list[dict]:
    """The users with the most alerts active in the last 7 days (UTC, today included: the daily trend's
    days), each linking to those alerts."""
    since = _trend_start(now)
    counts = top_users(tenant, since, TOP_USERS)
    mailboxes = Mailbox.objects.in_bulk([row.mailbox_id for row in counts])
    filters = {"since": since.isoformat(), "tenant": tenant_id}
    rows = []
    for row in counts:
        mailbox = mailboxes[row.mailbox_id]
        rows.append(
            {
                "mailbox__address": mailbox.address,
                "mailbox__display_name": mailbox.display_name,
                "n": row.total,
                "open": row.open,
                "url": alert_list_url(user=mailbox.address, **filters),
                "open_url": alert_list_url(user=mailbox.address, status="open", **filters),
            }
        )
    return rows


def _investigation_counts(investigations: QuerySet[Investigation], tenant_id: int | None) -> list[dict]:
    counts = dict(investigations.order_by().values_list("status").annotate(n=Count("id")))
    return [
        {
            "value": value,
            "label": label,
            "count": counts.get(value, 0),
            "url": list_url("console:investigations", status=value, tenant=tenant_id),
        }
        for value, label in Investigation.Status.choices
    ]


def _pending_actions(actions: RemediationActionQuerySet, now: datetime, tenant_id: int | None) -> dict:
    """How many actions wait for a decision, and since when the oldest has waited."""
    row = actions.pending(now).aggregate(count=Count("id"), oldest=Min("proposed_at"))
    return {
        **row,
        "waiting": now - row["oldest"] if row["oldest"] else None,
        "url": list_url("console:action_center", status=PENDING, tenant=tenant_id, ordering="proposed"),
    }


def _time_to_restrict(
    restrictions: QuerySet[Restriction], alerts: QuerySet[Alert], now: datetime, tenant_slug: str | None
) -> dict:
    """Median of (restriction placed − breach) over the restrictions placed by a policy in the last 7 days.
    The breach is when the sending crossed the limit (the end of the rolling window the policy recorded in
    the restriction's reason); a restriction without one falls back to the first activity of its earliest
    alert. Not the alerts' creation, nor the start of a user's activity hours before the breach."""
    rows = list(
        restrictions.filter(
            source=Restriction.Source.POLICY, placed_at__gte=now - PLACED_PERIODS[RESTRICT_PERIOD]
        )
        .order_by("-placed_at")
        # The one key of the reason it reads, as text: loading thousands of whole reasons cost more than the
        # rest of the dashboard.
        .values_list("pk", "placed_at", KT("reason__window_end"))[:MEDIAN_SAMPLE]
    )
    breaches = {pk: _breach_time(window_end) for pk, _, window_end in rows}
    missing = [pk for pk, moment in breaches.items() if moment is None]
    if missing:
        breaches |= dict(
            alerts.filter(restriction_id__in=missing)
            .values_list("restriction_id")
            .annotate(first=Min("first_activity_at"))
            .order_by()
        )
    delays = [
        max(placed_at - breach, timedelta(0))
        for pk, placed_at, _ in rows
        if (breach := breaches.get(pk)) is not None
    ]
    return {
        "median": _median(delays),
        "count": len(delays),
        "url": list_url(
            "console:restricted_users",
            state="",
            source=Restriction.Source.POLICY,
            placed=RESTRICT_PERIOD,
            tenant=tenant_slug,
        ),
    }


def _breach_time(window_end: str | None) -> datetime | None:
    try:
        moment = parse_datetime(window_end) if window_end else None
    except ValueError:  # well formed but not a real time
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def _time_to_remediate(investigations: QuerySet[Investigation], now: datetime, tenant_id: int | None) -> dict:
    """Median of (remediated − created) over the remediated investigations created in the last 30 days. An
    investigation is remediated when its last action completed (or, without one, when its run ended).

    The newest ones are read in order from an index on (status, created date), and each one's last completion
    is one index-only probe: grouping every action of the period cost more than the rest of the page."""
    last_completed = (
        RemediationAction.objects.filter(investigation=OuterRef("pk"), completed_at__isnull=False)
        .order_by("-completed_at")
        .values("completed_at")[:1]
    )
    rows = (
        investigations.filter(
            status=Investigation.Status.REMEDIATED, created_at__gte=now - PERIODS[REMEDIATE_PERIOD]
        )
        .annotate(
            took=ExpressionWrapper(
                Coalesce(Subquery(last_completed), "ended_at", "updated_at") - F("created_at"),
                output_field=DurationField(),
            )
        )
        .order_by("-created_at")
        .values_list("took", flat=True)[:MEDIAN_SAMPLE]
    )
    middle, count = _median_in_database(rows, "took")
    return {
        "median": middle,
        "count": count,
        "url": list_url(
            "console:investigations",
            status=Investigation.Status.REMEDIATED,
            last=REMEDIATE_PERIOD,
            tenant=tenant_id,
        ),
    }


def _active_incidents(tenant: Tenant | None) -> dict:
    """The open incidents, highest severity first and then the oldest, each linking to its page."""
    incidents = Incident.objects.open().filter(**({"tenant": tenant} if tenant else {}))
    order = ("-severity_rank", "created_at", "id")
    # The first few chosen alone, then joined and counted: joining every open incident to its mailbox and
    # users before keeping ten cost more than the rest of the panel.
    first = incidents.annotate(severity_rank=severity_rank()).order_by(*order).values("pk")[:ACTIVE_INCIDENTS]
    rows = list(with_counts(Incident.objects.filter(pk__in=first).with_related()).order_by(*order))
    return {
        "rows": rows,
        "count": incidents.count(),
        "url": list_url("console:incidents", status="open", tenant=tenant.pk if tenant else None),
    }


# The median and number of a sample of durations, negative ones read as zero. statistics.median's midpoint,
# computed where the rows are: sending thousands of durations to Python cost more than reading them.
MEDIAN_SQL = """
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY greatest(extract(epoch FROM sample.{column}), 0)::float8),
       count(*)
FROM ({query}) AS sample
"""


def _median_in_database(durations: QuerySet, column: str) -> tuple[timedelta | None, int]:
    """The median (to the second) and count of ``durations``, a ``values_list`` of the interval ``column``."""
    if connection.vendor != "postgresql":  # the embedded mode (SQLite): small tenants, counted in Python
        delays = [max(took, timedelta(0)) for took in durations]
        return _median(delays), len(delays)
    query, params = durations.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(MEDIAN_SQL.format(query=query, column=connection.ops.quote_name(column)), params)
        seconds, count = cursor.fetchone()
    return (timedelta(seconds=round(seconds)) if count else None), count


def _median(delays: list[timedelta]) -> timedelta | None:
    return timedelta(seconds=round(median(d.total_seconds() for d in delays))) if delays else None


class DashboardView(ConsolePage):
    """Counts link to the alert list filtered the same way; ``?tenant=<id>`` narrows it all to one tenant."""

    template_name = "console/dashboard.html"
    permission_required = "alerts.view_alert"

    def get_template_names(self) -> list[str]:
        htmx = getattr(self.request, "htmx", None)
        if htmx and not htmx.boosted:
            return [f"{self.template_name}#widgets"]
        return [self.template_name]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = self._widgets(**kwargs)
        # Counters without the zeros: a status nobody is in says nothing (the full rows stay in the context).
        context["statuses_shown"] = [row for row in context["statuses"] if row["count"]]
        context["investigations_shown"] = [row for row in context["investigations"] if row["count"]]
        return context

    def _widgets(self, **kwargs: Any) -> dict[str, Any]:
        now = timezone.now()
        tenants = list(Tenant.objects.all())
        tenant = next((t for t in tenants if str(t.pk) == self.request.GET.get("tenant")), None)
        by_tenant = {"tenant": tenant} if tenant else {}
        alerts = Alert.objects.filter(**by_tenant)
        investigations = Investigation.objects.filter(**by_tenant)
        restrictions = Restriction.objects.active().filter(**by_tenant)
        tenant_id = tenant.pk if tenant else None
        tenant_slug = tenant.slug if tenant else None
        open_by_severity, by_status = _alert_counts(tenant)
        severities = _counts(open_by_severity, "severity", Severity.choices, status="open", tenant=tenant_id)
        hours = hourly_counts(tenant, _trend_start(now))
        actions = RemediationAction.objects.filter(**by_tenant)
        pending = _pending_actions(actions, now, tenant_id)
        return super().get_context_data(
            title="Alerts dashboard",
            active_incidents=_active_incidents(tenant) if self.request.user.has_perm(VIEW_INCIDENT) else None,
            tenants=tenants if len(tenants) > 1 else [],
            tenant=tenant,
            severities=severities,
            open_count=sum(s["count"] for s in severities),
            open_url=alert_list_url(status="open", tenant=tenant_id),
            statuses=_counts(by_status, "status", Alert.Status.choices, tenant=tenant_id),
            hourly=_trend(hours, now, hourly=True),
            daily=_trend(hours, now, hourly=False),
            restricted_count=restrictions.count(),
            restricted_url=list_url("console:restricted_users", tenant=tenant_slug),
            newest_restriction=restrictions.select_related("mailbox").order_by("-placed_at", "-id").first(),
            investigations=_investigation_counts(investigations, tenant_id),
            pending=pending,
            time_to_restrict=_time_to_restrict(
                Restriction.objects.filter(**by_tenant), alerts, now, tenant_slug
            ),
            time_to_remediate=_time_to_remediate(investigations, now, tenant_id),
            top_users=_top_users(now, tenant, tenant_id),
            attention=_needs_attention(alerts, actions, now, pending["oldest"]),
            high_url=alert_list_url(
                status="open", severity=Severity.HIGH, tenant=tenant_id, ordering="first_activity"
            ),
            refreshed_at=now,
            **kwargs,
        )
