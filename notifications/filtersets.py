"""Filters of the webhook delivery log (the console's Notifications page and its CSV export)."""

import django_filters

from core.filters import FilterSet, since_filter

from .models import EVENT_KINDS, TEST_KIND, Attempted, WebhookDelivery, WebhookEndpoint


class WebhookDeliveryFilterSet(FilterSet):
    status = django_filters.ChoiceFilter(choices=Attempted.Status.choices, label="Status")
    endpoint = django_filters.ModelChoiceFilter(queryset=WebhookEndpoint.objects.all(), label="Endpoint")
    kind = django_filters.ChoiceFilter(choices=(*EVENT_KINDS, (TEST_KIND, "Test delivery")), label="Event")
    since = since_filter("created_at", "From")
    ordering = django_filters.OrderingFilter(
        fields=(("created_at", "created"), ("attempts", "attempts"), ("status", "status"))
    )

    class Meta:
        model = WebhookDelivery
        fields = ["status", "endpoint", "kind", "since"]
