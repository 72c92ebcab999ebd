"""Filters every list shares (django-filter): a time range on one field, picked with the browser's date-time
control and accepted as ISO 8601 by the API; and :class:`FilterSet`, the base of every list's filters, which
keeps hostile values away from the database.

A value the database cannot take is a form error, never a 500: the API answers 400 with it, a console list
shows it and leaves that filter out. Refused: a time whose offset PostgreSQL does not accept (``-16:30``) or
that leaves the calendar once converted to UTC (``0001-01-01T00:00+01:00``), an integer past 64 bits, a NUL
character or a lone surrogate in a text, a text longer than :data:`MAX_TEXT_LENGTH`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, QueryDict
from django.utils import timezone
from django_filters.constants import EMPTY_VALUES
from django_filters.fields import IsoDateTimeField

from .models import Tenant

#: The "last …" periods the lists offer (alert activity, investigation creation, restriction placement).
PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
PERIOD_CHOICES = [("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days")]

MAX_TEXT_LENGTH = 1000
MAX_INTEGER = 2**63 - 1
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def _storable_text(value: str) -> None:
    if isinstance(value, str) and _UNSTORABLE.search(value):
        raise ValidationError("Must not contain NUL characters or lone surrogates.", code="unstorable")


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 (or browser ``datetime-local``) time, handed to the query in UTC; one whose UTC form
    leaves the calendar is refused."""

    def to_python(self, value: Any) -> datetime | None:
        return _in_utc(super().to_python(value))


def _in_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise ValidationError("This time is out of range.", code="out_of_range") from None
    if not datetime.min.replace(tzinfo=UTC) < moment < datetime.max.replace(tzinfo=UTC):
        raise ValidationError("This time is out of range.", code="out_of_range")
    return moment


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


def _time_bound_filter(field_name: str, lookup_expr: str, label: str) -> UtcDateTimeFilter:
    """One end of a time range on ``field_name``, entered with the browser's date-time picker."""
    return UtcDateTimeFilter(
        field_name=field_name,
        lookup_expr=lookup_expr,
        label=label,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )


def since_filter(field_name: str, label: str) -> UtcDateTimeFilter:
    """``field_name`` at or after the given time."""
    return _time_bound_filter(field_name, "gte", label)


def until_filter(field_name: str, label: str) -> UtcDateTimeFilter:
    """``field_name`` strictly before the given time."""
    return _time_bound_filter(field_name, "lt", label)


def filter_by_user(queryset: QuerySet, value: str, prefix: str = "mailbox__") -> QuerySet:
    """Rows of one user: an exact address when given a whole one, else any part of the address or name.
    ``prefix`` is the path to the mailbox (``mailbox__``, ``investigation__mailbox__``)."""
    value = value.strip()
    if "@" in value:
        return queryset.filter(**{f"{prefix}address__iexact": value})
    return queryset.filter(
        Q(**{f"{prefix}address__icontains": value}) | Q(**{f"{prefix}display_name__icontains": value})
    )


class PeriodFilter(django_filters.ChoiceFilter):
    """``field_name`` within one of :data:`PERIODS` of now (``?last=24h`` / ``7d`` / ``30d``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("choices", PERIOD_CHOICES)
        super().__init__(*args, **kwargs)

    def filter(self, qs: QuerySet, value: str) -> QuerySet:
        if value in EMPTY_VALUES:
            return qs
        return qs.filter(**{f"{self.field_name}__gte": timezone.now() - PERIODS[value]})


class TenantChoiceField(forms.ModelChoiceField):
    """A tenant named by its slug (the one form every list and the ingest API take). For links made before the
    lists agreed on it, a number that is no tenant's slug is read as the tenant's id."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["to_field_name"] = "slug"
        super().__init__(*args, **kwargs)

    def to_python(self, value: Any) -> Tenant | None:
        if value in self.empty_values:
            return None
        tenant = tenant_named(str(value), self.queryset)
        if tenant is None:
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice")
        return tenant


def tenant_named(key: str, tenants: QuerySet[Tenant] | None = None) -> Tenant | None:
    """The tenant whose slug is ``key`` or, failing that, whose id it is; None for a key no tenant has (or
    one the database could not even compare: a NUL, a lone surrogate, a number past 64 bits)."""
    tenants = Tenant.objects.all() if tenants is None else tenants
    key = key.strip()
    if not key or len(key) > MAX_TEXT_LENGTH or _UNSTORABLE.search(key):
        return None
    tenant = tenants.filter(slug=key).first()
    if tenant is None and key.isdigit() and int(key) <= MAX_INTEGER:
        tenant = tenants.filter(pk=int(key)).first()
    return tenant


class TenantFilter(django_filters.ModelChoiceFilter):
    """Rows of one tenant, named by slug (``?tenant=contoso``; an id still works, see
    :class:`TenantChoiceField`)."""

    field_class = TenantChoiceField  # type: ignore[assignment]  # Django's ModelChoiceField: no null choice

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("queryset", Tenant.objects.all())
        kwargs.setdefault("field_name", "tenant")
        kwargs.setdefault("label", "Tenant")
        kwargs.setdefault("empty_label", "Any tenant")
        super().__init__(*args, **kwargs)


def _guard(field: forms.Field) -> None:
    """Add the bounds a database value needs to a filter's form field (in place: fields are per filterset)."""
    if isinstance(field, forms.DateTimeField) and not isinstance(field, UtcDateTimeField):
        to_python = field.to_python
        field.to_python = lambda value: _in_utc(to_python(value))  # type: ignore[method-assign]  # per field
    elif isinstance(field, forms.IntegerField | forms.DecimalField | forms.FloatField):
        field.validators += [MinValueValidator(-MAX_INTEGER), MaxValueValidator(MAX_INTEGER)]
    elif isinstance(field, forms.ModelChoiceField):
        field.validators.append(_storable_text)
        field.to_python = _bounded_choice(field.to_python)  # type: ignore[method-assign,assignment]  # per field
    elif isinstance(field, forms.CharField | forms.ChoiceField):
        field.validators += [_storable_text, MaxLengthValidator(MAX_TEXT_LENGTH)]


def _bounded_choice(to_python: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A model choice looked up only when its key is a storable value (a 64-bit integer for integer keys)."""

    def checked(value: Any) -> Any:
        if isinstance(value, str):
            _storable_text(value)
            if len(value) > MAX_TEXT_LENGTH:
                raise ValidationError("Select a valid choice.", code="invalid_choice")
            digits = value.strip().lstrip("+-")
            if digits.isdigit() and int(digits) > MAX_INTEGER:
                raise ValidationError("Select a valid choice.", code="invalid_choice")
        return to_python(value)

    return checked


class FilterSet(django_filters.FilterSet):
    """The base of every list's filters: each form field refuses what the database cannot take."""

    def __init__(
        self,
        data: QueryDict | dict[str, Any] | None = None,
        queryset: QuerySet | None = None,
        *,
        request: HttpRequest | None = None,
        prefix: str | None = None,
    ) -> None:
        super().__init__(data, self.prepare_queryset(queryset), request=request, prefix=prefix)

    def prepare_queryset(self, queryset: QuerySet | None) -> QuerySet | None:
        """The rows to filter: ``queryset`` (None: the model's), which a list may default or annotate."""
        return queryset

    def get_form_class(self) -> type[forms.Form]:
        form_class = super().get_form_class()
        for field in form_class.base_fields.values():
            _guard(field)
        return form_class
