"""Filters of the investigations list and the action center, shared by the console pages (and their CSV) and
``GET /api/v1/investigations/`` / ``GET /api/v1/actions/``.

The list annotations (threat, action and pending counts, elapsed time) are correlated subqueries, so a page
costs the same few queries whatever its number of rows.
"""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import (
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce, Now

from core.filters import PERIODS as PERIODS  # re-exported: the console dashboard reads it here
from core.filters import FilterSet, PeriodFilter, TenantFilter, filter_by_user, since_filter, until_filter

from .models import (
    Finding,
    Investigation,
    InvestigationQuerySet,
    RemediationAction,
    RemediationActionQuerySet,
)

OPEN = "open"
INVESTIGATION_STATUS_CHOICES = [(OPEN, "Open"), *Investigation.Status.choices]
PENDING = "pending"
HISTORY = "history"
ACTION_STATUS_CHOICES = [
    (PENDING, "Pending decision"),
    (OPEN, "Open (pending, approved, running, manual)"),
    (HISTORY, "History (decided)"),
    *RemediationAction.Status.choices,
]


def _count(queryset: QuerySet) -> Coalesce:
    """A correlated COUNT(*) of ``queryset`` (already filtered on ``investigation=OuterRef("pk")``)."""
    counted = queryset.order_by().values("investigation").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def with_counts(queryset: QuerySet[Investigation]) -> QuerySet[Investigation]:
    """Annotate ``threat_count`` (malicious or suspicious findings), ``action_count``, ``pending_count``
    (actions awaiting a decision), ``open_action_count`` and ``elapsed`` (run time so far, to sort by)."""
    if "threat_count" in queryset.query.annotations:
        return queryset  # already annotated (the API's queryset, then its filter set)
    findings = Finding.objects.filter(investigation=OuterRef("pk"))
    actions = RemediationAction.objects.filter(investigation=OuterRef("pk"))
    return queryset.annotate(
        threat_count=_count(findings.exclude(verdict=Finding.Verdict.CLEAN)),
        action_count=_count(actions),
        pending_count=_count(actions.filter(status=RemediationAction.Status.PENDING)),
        open_action_count=_count(actions.filter(status__in=RemediationAction.OPEN_STATUSES)),
        elapsed=ExpressionWrapper(
            Coalesce(F("ended_at"), Now()) - F("started_at"), output_field=DurationField()
        ),
    )


class InvestigationFilterSet(FilterSet):
    """Status (or every open one), verdict, user, tenant, creation period or range, "has actions to decide";
    sortable by id, status, user, creation, last change, threats, actions and duration."""

    status = django_filters.ChoiceFilter(
        choices=INVESTIGATION_STATUS_CHOICES, method="filter_status", label="Status"
    )
    verdict = django_filters.ChoiceFilter(choices=Investigation.Verdict.choices, label="Verdict")
    user = django_filters.CharFilter(method="filter_user", label="User")
    tenant = TenantFilter()
    pending = django_filters.BooleanFilter(
        method="filter_pending",
        label="Actions to decide",
        widget=forms.Select(choices=[("", "Any"), ("true", "Yes"), ("false", "No")]),
    )
    last = PeriodFilter(field_name="created_at", label="Created")
    since = since_filter("created_at", "Created since")
    until = until_filter("created_at", "Created before")
    ordering = django_filters.OrderingFilter(
        fields=(
            ("created_at", "created"),
            ("updated_at", "updated"),
            ("id", "id"),
            ("status", "status"),
            ("mailbox__address", "user"),
            ("threat_count", "threats"),
            ("action_count", "actions"),
            ("pending_count", "pending"),
            ("elapsed", "duration"),
            ("risk_score", "risk"),
        ),
        field_labels={
            "created_at": "Created",
            "updated_at": "Last changed",
            "mailbox__address": "User",
            "threat_count": "Threats",
            "action_count": "Actions",
            "pending_count": "Pending actions",
            "elapsed": "Duration",
            "risk_score": "Risk score",
        },
        label="Sort",
    )

    class Meta:
        model = Investigation
        fields = ["status", "verdict", "user", "tenant", "pending", "last", "since", "until"]

    def prepare_queryset(self, queryset: QuerySet | None) -> QuerySet:
        return with_counts(Investigation.objects.with_related() if queryset is None else queryset)

    def filter_status(self, queryset: InvestigationQuerySet, name: str, value: str) -> QuerySet:
        return queryset.open() if value == OPEN else queryset.filter(status=value)

    def filter_user(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return filter_by_user(queryset, value)

    def filter_pending(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        if value is None:
            return queryset
        return queryset.filter(pending_count__gt=0) if value else queryset.filter(pending_count=0)


class RemediationActionFilterSet(FilterSet):
    """Pending / open / history or one status, action type, investigation, user, tenant, proposal range;
    sortable by proposal, decision, expiry, status, type and user."""

    status = django_filters.ChoiceFilter(
        choices=ACTION_STATUS_CHOICES, method="filter_status", label="Status"
    )
    action_type = django_filters.ChoiceFilter(choices=RemediationAction.Type.choices, label="Action")
    investigation = django_filters.NumberFilter(field_name="investigation_id", label="Investigation")
    user = django_filters.CharFilter(method="filter_user", label="User")
    tenant = TenantFilter()
    since = since_filter("proposed_at", "Proposed since")
    until = until_filter("proposed_at", "Proposed before")
    ordering = django_filters.OrderingFilter(
        fields=(
            ("proposed_at", "proposed"),
            ("decided_at", "decided"),
            ("expires_at", "expires"),
            ("completed_at", "completed"),
            ("status", "status"),
            ("action_type", "type"),
            ("investigation__mailbox__address", "user"),
            ("id", "id"),
        ),
        field_labels={
            "proposed_at": "Proposed",
            "decided_at": "Decided",
            "expires_at": "Expires",
            "completed_at": "Completed",
            "action_type": "Action",
            "investigation__mailbox__address": "User",
        },
        label="Sort",
    )

    class Meta:
        model = RemediationAction
        fields = ["status", "action_type", "investigation", "user", "tenant", "since", "until"]

    def prepare_queryset(self, queryset: QuerySet | None) -> QuerySet:
        return RemediationAction.objects.with_related() if queryset is None else queryset

    def filter_status(self, queryset: RemediationActionQuerySet, name: str, value: str) -> QuerySet:
        if value == PENDING:
            return queryset.pending()
        if value == OPEN:
            return queryset.open()
        if value == HISTORY:
            return queryset.exclude(pk__in=queryset.pending().values("pk"))
        # Read as now: a Pending action past its expiry is Expired, before beat marks it.
        return queryset.with_effective_status().filter(effective_status=value)

    def filter_user(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return filter_by_user(queryset, value, "investigation__mailbox__")
