"""Filters of the incidents queue, shared by the console page (and its CSV) and ``GET /api/v1/incidents/``.

Besides the queue's filters (status, severity, assignee, user, tenant, activity range), ``alert``,
``restriction``, ``investigation`` and ``action`` take an object's id and find its incident: the lower apps'
APIs cannot name their incident (they sit below this app), so a client asks ``?alert=<id>``.
"""

from __future__ import annotations

from decimal import Decimal

import django_filters
from django import forms
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from alerts.filtersets import ActivityQueueFilterSet, activity_ordering
from alerts.models import Alert, Severity, severity_rank
from core.filters import TenantFilter, since_filter, until_filter
from investigations.models import RemediationAction

from .models import Incident, IncidentAlert, IncidentInvestigation, IncidentRestriction

OPEN = "open"
STATUS_CHOICES = [(OPEN, "Open (active or in progress)"), *Incident.Status.choices]
ME = "me"
NOBODY = "none"


def _count(links: QuerySet) -> Coalesce:
    counted = links.order_by().values("incident").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def with_counts(queryset: QuerySet[Incident]) -> QuerySet:  # of incidents, with the annotations below
    """Annotate ``severity_rank`` (to sort by meaning), ``alert_count``, ``open_alert_count``,
    ``restriction_count`` and ``investigation_count``: correlated subqueries, so a page costs the same
    few queries whatever its number of rows."""
    if "alert_count" in queryset.query.annotations:
        return queryset
    alerts = IncidentAlert.objects.filter(incident=OuterRef("pk"))
    return queryset.annotate(
        severity_rank=severity_rank(),
        alert_count=_count(alerts),
        open_alert_count=_count(alerts.exclude(alert__status=Alert.Status.RESOLVED)),
        restriction_count=_count(IncidentRestriction.objects.filter(incident=OuterRef("pk"))),
        investigation_count=_count(IncidentInvestigation.objects.filter(incident=OuterRef("pk"))),
    )


class IncidentFilterSet(ActivityQueueFilterSet):
    """Status (or all open), severity, assignee (a username, ``me`` or ``none``), user, tenant, activity
    range, and the incident of one alert / restriction / investigation / remediation action."""

    status = django_filters.ChoiceFilter(
        choices=STATUS_CHOICES, method="filter_status", label="Status", empty_label="Any status"
    )
    severity = django_filters.ChoiceFilter(
        choices=Severity.choices, label="Severity", empty_label="Any severity"
    )
    assignee = django_filters.CharFilter(method="filter_assignee", label="Assigned to")
    user = django_filters.CharFilter(method="filter_user", label="User")
    mailbox = django_filters.NumberFilter(
        field_name="mailbox_id", label="Mailbox id", widget=forms.HiddenInput
    )
    tenant = TenantFilter()
    since = since_filter("last_activity_at", "Active since")
    until = until_filter("last_activity_at", "Active before")
    alert = django_filters.NumberFilter(
        field_name="alert_links__alert_id", label="Alert id", widget=forms.HiddenInput
    )
    restriction = django_filters.NumberFilter(
        field_name="restriction_links__restriction_id", label="Restriction id", widget=forms.HiddenInput
    )
    investigation = django_filters.NumberFilter(
        field_name="investigation_links__investigation_id", label="Investigation id", widget=forms.HiddenInput
    )
    action = django_filters.NumberFilter(method="filter_action", label="Action id", widget=forms.HiddenInput)
    ordering = activity_ordering("alert_count", "alerts", "Alerts")

    class Meta:
        model = Incident
        fields = ["status", "severity", "assignee", "user", "tenant", "since", "until"]

    def prepare_queryset(self, queryset: QuerySet | None) -> QuerySet:
        return with_counts(Incident.objects.all() if queryset is None else queryset)

    def filter_assignee(self, queryset: QuerySet[Incident], name: str, value: str) -> QuerySet[Incident]:
        value = value.strip()
        if value == NOBODY:
            return queryset.filter(assigned_to__isnull=True)
        if value == ME:
            user = getattr(self.request, "user", None)
            return queryset.filter(assigned_to=user) if user and user.is_authenticated else queryset.none()
        return queryset.filter(assigned_to__username__iexact=value)

    def filter_action(self, queryset: QuerySet[Incident], name: str, value: Decimal) -> QuerySet[Incident]:
        # int(): what the pk lookup does with the number filter's Decimal anyway
        investigation = RemediationAction.objects.filter(pk=int(value)).values("investigation_id")
        return queryset.filter(investigation_links__investigation_id__in=Subquery(investigation))
