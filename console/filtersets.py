import django_filters
from django.db.models import Q, QuerySet

from core.filters import FilterSet, since_filter, until_filter
from core.models import AuditEvent


class AuditEventFilterSet(FilterSet):
    """Filters of the Audit log page (and its CSV export)."""

    q = django_filters.CharFilter(method="search", label="Search")
    action = django_filters.CharFilter(lookup_expr="icontains", label="Action")
    actor = django_filters.CharFilter(field_name="actor_label", lookup_expr="icontains", label="Actor")
    since = since_filter("at", "From")
    until = until_filter("at", "Until")
    ordering = django_filters.OrderingFilter(
        fields=(("at", "at"), ("action", "action"), ("actor_label", "actor"))
    )

    class Meta:
        model = AuditEvent
        fields = ["q", "action", "actor", "since", "until"]

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(
            Q(target_repr__icontains=value) | Q(action__icontains=value) | Q(comment__icontains=value)
        )
