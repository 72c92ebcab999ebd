"""Filters of the alert list, shared by the console page (and its CSV) and ``GET /api/v1/alerts/``."""

from __future__ import annotations

from typing import Protocol, Self

import django_filters
from django import forms
from django.db.models import QuerySet

from core.filters import PERIODS as PERIODS  # re-exported: the console dashboard reads it here
from core.filters import FilterSet, PeriodFilter, TenantFilter, filter_by_user, since_filter, until_filter

from .models import Alert, AlertPolicy, Severity, severity_rank
from .policies import DEFAULT_POLICIES

OPEN = "open"
STATUS_CHOICES = [(OPEN, "Open (not resolved)"), *Alert.Status.choices]
CATEGORY_CHOICES = [(category, category) for category in sorted({p.category for p in DEFAULT_POLICIES})]
POLICY_CHOICES = [("", "Any policy"), *((p.kind, p.name) for p in DEFAULT_POLICIES)]


def with_severity_rank(queryset: QuerySet[Alert]) -> QuerySet[Alert]:
    """Annotate ``severity_rank`` (:func:`severity_rank`)."""
    return queryset.annotate(severity_rank=severity_rank())


def activity_ordering(count_field: str, count_name: str, count_label: str) -> django_filters.OrderingFilter:
    """The sort of an activity queue (alerts, incidents): activity, creation, severity, status, a count, user,
    title; the latest activity first by default."""
    return django_filters.OrderingFilter(
        fields=(
            ("last_activity_at", "last_activity"),
            ("first_activity_at", "first_activity"),
            ("created_at", "created"),
            ("severity_rank", "severity"),
            ("status", "status"),
            (count_field, count_name),
            ("mailbox__address", "user"),
            ("title", "title"),
        ),
        field_labels={"severity_rank": "Severity", count_field: count_label, "mailbox__address": "User"},
        label="Sort",
        empty_label="Latest activity first",
    )


class _Openable(Protocol):
    def open(self) -> Self: ...

    def filter(self, *args: object, **kwargs: object) -> Self: ...


class ActivityQueueFilterSet(FilterSet):
    """What the activity queues' filters (alerts, incidents) share: ``status`` ``open`` is every row not
    resolved (its queryset's ``open()``), ``user`` an address or a part of one (:func:`filter_by_user`)."""

    def filter_status[Q: _Openable](self, queryset: Q, name: str, value: str) -> Q:
        return queryset.open() if value == OPEN else queryset.filter(status=value)

    def filter_user(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return filter_by_user(queryset, value)


class AlertFilterSet(ActivityQueueFilterSet):
    """Status (or all open alerts), severity, policy (kind or id), category, user, tenant, activity range.

    ``user`` matches an address exactly when given a whole address, else any part of the address or name.
    """

    status = django_filters.ChoiceFilter(
        choices=STATUS_CHOICES, method="filter_status", label="Status", empty_label="Any status"
    )
    severity = django_filters.ChoiceFilter(
        choices=Severity.choices, label="Severity", empty_label="Any severity"
    )
    policy = django_filters.CharFilter(
        method="filter_policy", label="Policy", widget=forms.Select(choices=POLICY_CHOICES)
    )
    category = django_filters.ChoiceFilter(
        choices=CATEGORY_CHOICES, label="Category", empty_label="Any category"
    )
    user = django_filters.CharFilter(method="filter_user", label="User")
    tenant = TenantFilter()
    last = PeriodFilter(field_name="last_activity_at", label="Last activity", empty_label="Any time")
    since = since_filter("last_activity_at", "Active since")
    until = until_filter("last_activity_at", "Active before")
    ordering = activity_ordering("evidence_count", "count", "Count")

    class Meta:
        model = Alert
        fields = ["status", "severity", "policy", "category", "user", "tenant", "last", "since", "until"]

    def prepare_queryset(self, queryset: QuerySet | None) -> QuerySet:
        return with_severity_rank(Alert.objects.all() if queryset is None else queryset)

    def filter_policy(self, queryset: QuerySet[Alert], name: str, value: str) -> QuerySet[Alert]:
        value = value.strip()
        if value.isdigit():
            return queryset.filter(policy_id=int(value))
        return queryset.filter(policy__kind=value) if value in AlertPolicy.Kind.values else queryset.none()
