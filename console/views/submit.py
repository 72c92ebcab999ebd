"""How a console form hands its input to a service: a refusal of the service (a domain error, whose message
is safe to show) becomes the form's error, shown above its fields."""

from __future__ import annotations

from collections.abc import Callable

from django import forms

from core.exceptions import DomainError


def call_service[T](form: forms.Form, change: Callable[[], T]) -> T | None:
    """``change()`` (the service call a valid ``form`` asks for) and its result; None when the service
    refused, with its message added to ``form``."""
    try:
        return change()
    except DomainError as exc:
        form.add_error(None, str(exc))
        return None
