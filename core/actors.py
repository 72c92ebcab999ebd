"""Who acts: the signed-in person a view hands to a service as ``actor=``."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from rest_framework.request import Request


def acting_user(request: HttpRequest | Request) -> User:
    """The person behind ``request``. Views that call a service are login- and permission-protected, so an
    anonymous visitor or an API token (which may only read or ingest) is refused here rather than written into
    an audit row or a ``created_by`` column that must name a user."""
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise PermissionDenied
    return user
