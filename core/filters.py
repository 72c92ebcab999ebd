"""Filters every list shares (django-filter): a time range on one field, picked with the browser's date-time
control and accepted as ISO 8601 by the API."""

import django_filters
from django import forms


def since_filter(field_name: str, label: str) -> django_filters.IsoDateTimeFilter:
    """``field_name`` at or after the given time."""
    return django_filters.IsoDateTimeFilter(
        field_name=field_name,
        lookup_expr="gte",
        label=label,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )


def until_filter(field_name: str, label: str) -> django_filters.IsoDateTimeFilter:
    """``field_name`` strictly before the given time."""
    return django_filters.IsoDateTimeFilter(
        field_name=field_name,
        lookup_expr="lt",
        label=label,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
