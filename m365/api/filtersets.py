"""Filters of a connection's pull runs, shared by the connector status page and ``…/status/``."""

import django_filters

from core.filters import FilterSet, since_filter

from ..models import PullRun, Source


class PullRunFilterSet(FilterSet):
    source = django_filters.ChoiceFilter(choices=Source.choices, label="Source")
    status = django_filters.ChoiceFilter(choices=PullRun.Status.choices, label="Status")
    since = since_filter("started_at", "From")
    ordering = django_filters.OrderingFilter(
        fields=(("started_at", "started"), ("rejected", "rejected"), ("throttled", "throttled"))
    )

    class Meta:
        model = PullRun
        fields = ["source", "status", "since"]
