"""Filters of the mailbox list, shared by the console's Mailboxes page (and its CSV) and the API.

Only the directory's own data is read here (layer 1): the console adds the sent-mail columns and sorts on top
(``console.mailbox_queries.MailboxListFilterSet``), because message events live in a higher layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import django_filters
from django.db.models import F, OuterRef, Q, QuerySet, Subquery

from core.filters import FilterSet, TenantFilter

from .models import Mailbox, SignIn

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

VIP_YES = "yes"
VIP_NO = "no"
VIP_CHOICES = ((VIP_YES, "VIP only"), (VIP_NO, "Not VIP"))
DEFAULT_ORDER_LABEL = "Address (default)"


def with_last_sign_in(queryset: QuerySet[Mailbox]) -> QuerySet[Mailbox]:
    """Annotate each mailbox's newest sign-in (any result): ``last_sign_in_at``, ``last_sign_in_result``,
    ``last_sign_in_country``. Three correlated subqueries on the (tenant, mailbox, time) index, never one
    query per row.
    """
    newest = SignIn.objects.filter(tenant_id=OuterRef("tenant_id"), mailbox_id=OuterRef("pk")).order_by(
        "-time", "-id"
    )
    return queryset.annotate(
        last_sign_in_at=Subquery(newest.values("time")[:1]),
        last_sign_in_result=Subquery(newest.values("result")[:1]),
        last_sign_in_country=Subquery(newest.values("country")[:1]),
    )


def department_choices() -> list[tuple[str, str]]:
    """The departments mailboxes have now (any tenant), sorted: the filter offers only values that exist."""
    departments = (
        Mailbox.objects.exclude(department="")
        .order_by("department")
        .values_list("department", flat=True)
        .distinct()
    )
    return [(department, department) for department in departments]


class NullsLastOrderingFilter(django_filters.OrderingFilter):
    """Ordering that puts empty values (never signed in, no department) last in both directions, with the
    primary key as a tie-breaker so pages never overlap."""

    def filter(self, qs: QuerySet, value: Any) -> QuerySet:
        if value in django_filters.constants.EMPTY_VALUES:
            return qs
        ordering = []
        for param in value:
            if param in django_filters.constants.EMPTY_VALUES:
                continue
            descending = param.startswith("-")
            field = F((self.param_map or {}).get(param.lstrip("-"), param.lstrip("-")))
            ordering.append(field.desc(nulls_last=True) if descending else field.asc(nulls_last=True))
        return qs.order_by(*ordering, "pk") if ordering else qs


class MailboxFilterSet(FilterSet):
    """Search (address or display name), department, VIP, tenant (by slug) and sort.

    The queryset is annotated with the newest sign-in (:func:`with_last_sign_in`), so it can be shown and
    sorted. ``show_tenant=False`` drops the tenant filter (a deployment with one tenant).
    """

    ORDERING_FIELDS: tuple[tuple[str, str], ...] = (
        ("address", "address"),
        ("display_name", "name"),
        ("department", "department"),
        ("first_seen", "first_seen"),
        ("last_sign_in_at", "last_sign_in"),
    )
    ORDERING_LABELS: dict[str, StrOrPromise] = {
        "display_name": "Name",
        "first_seen": "First seen",
        "last_sign_in_at": "Last sign-in",
    }

    q = django_filters.CharFilter(method="search", label="Search")
    department = django_filters.ChoiceFilter(
        choices=department_choices, label="Department", empty_label="All departments"
    )
    vip = django_filters.ChoiceFilter(
        choices=VIP_CHOICES, method="filter_vip", label="VIP", empty_label="All"
    )
    tenant = TenantFilter(empty_label="All tenants")
    ordering = NullsLastOrderingFilter(
        fields=ORDERING_FIELDS, field_labels=ORDERING_LABELS, label="Sort", empty_label=DEFAULT_ORDER_LABEL
    )

    class Meta:
        model = Mailbox
        fields = ["q", "department", "vip", "tenant"]

    def __init__(
        self,
        data: Any = None,
        queryset: QuerySet[Mailbox] | None = None,
        *,
        request: Any = None,
        prefix: str | None = None,
        show_tenant: bool = True,
    ) -> None:
        if queryset is None:
            queryset = Mailbox.objects.all()
        super().__init__(data, with_last_sign_in(queryset), request=request, prefix=prefix)
        if not show_tenant:
            del self.filters["tenant"]

    def search(self, queryset: QuerySet[Mailbox], name: str, value: str) -> QuerySet[Mailbox]:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(address__icontains=value) | Q(display_name__icontains=value))

    def filter_vip(self, queryset: QuerySet[Mailbox], name: str, value: str) -> QuerySet[Mailbox]:
        if value == VIP_YES:
            return queryset.filter(vip=True)
        if value == VIP_NO:
            return queryset.filter(vip=False)
        return queryset
