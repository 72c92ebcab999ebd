"""Filters of message events, shared by the console's mail lists and the API."""

import django_filters
from django.db.models import Q, QuerySet

from core.filters import FilterSet, TenantFilter
from mailboxes.addresses import normalize_address

from .models import MessageEvent


class MessageEventFilterSet(FilterSet):
    """Search (subject, event id, Message-ID), sender, verdict, event-time range, external only, tenant."""

    q = django_filters.CharFilter(method="search", label="Search")
    sender = django_filters.CharFilter(method="filter_sender", label="Sender address")
    verdict = django_filters.ChoiceFilter(choices=MessageEvent.Verdict.choices, empty_label="Any verdict")
    since = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="gte", label="Sent at or after")
    until = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="lte", label="Sent at or before")
    external = django_filters.BooleanFilter(method="filter_external", label="Has external recipients")
    tenant = TenantFilter()
    ordering = django_filters.OrderingFilter(
        fields=(
            ("time", "time"),
            ("recipient_count", "recipients"),
            ("external_count", "external"),
            ("sender__address", "sender"),
        ),
        label="Sort",
    )

    class Meta:
        model = MessageEvent
        fields = ["q", "sender", "verdict", "since", "until", "external", "tenant"]

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        return queryset.filter(Q(subject__icontains=value) | Q(event_id=value) | Q(internet_message_id=value))

    def filter_sender(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(sender__address=normalize_address(value))

    def filter_external(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        if value is None:
            return queryset
        return queryset.filter(external_count__gt=0) if value else queryset.filter(external_count=0)
