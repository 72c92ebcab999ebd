"""Filters of restrictions, shared by the console's Restricted users list and the API."""

from typing import Any

import django_filters
from django.db.models import Q, QuerySet
from django.utils import timezone

from core.filters import PERIODS, FilterSet, PeriodFilter, TenantFilter

from .models import Restriction, RestrictionQuerySet

PLACED_PERIODS = PERIODS  # the name the console's dashboard imports


class RestrictionFilterSet(FilterSet):
    """Search by address or name, state (restricted now / expired / released), source, placement period,
    mailbox, tenant, ordering."""

    q = django_filters.CharFilter(method="search", label="Search")
    state = django_filters.ChoiceFilter(
        choices=Restriction.State.choices, method="filter_state", label="State", empty_label="All states"
    )
    source = django_filters.ChoiceFilter(
        choices=Restriction.Source.choices, label="Placed by", empty_label="Any"
    )
    placed = PeriodFilter(field_name="placed_at", label="Placed", empty_label="Any time")
    mailbox = django_filters.NumberFilter(field_name="mailbox_id", label="Mailbox id")
    tenant = TenantFilter(empty_label="All")
    ordering = django_filters.OrderingFilter(
        fields=(
            ("placed_at", "placed"),
            ("expires_at", "expires"),
            ("released_at", "released"),
            ("mailbox__address", "address"),
            ("policy_name", "policy"),
        ),
        label="Sort",
        empty_label="Newest first",
    )

    class Meta:
        model = Restriction
        fields = ["q", "state", "source", "placed", "mailbox", "tenant"]

    def __init__(self, *args: Any, show_tenant: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not show_tenant:
            del self.filters["tenant"]

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(
            Q(mailbox__address__icontains=value.strip()) | Q(mailbox__display_name__icontains=value.strip())
        )

    def filter_state(self, queryset: RestrictionQuerySet, name: str, value: str) -> QuerySet:
        now = timezone.now()
        if value == Restriction.State.ACTIVE:
            return queryset.active(now)
        if value == Restriction.State.EXPIRED:
            return queryset.expired(now)
        if value == Restriction.State.RELEASED:
            return queryset.released()
        return queryset
