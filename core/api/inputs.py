"""What the apps' API actions share: a validated input body, a 400 answer in the API's ``{"detail": …}`` form,
and the person an ``assign`` action names."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from core.actors import acting_user


def bad_request(detail: str) -> Response:
    """A 400 answer with ``{"detail": detail}``, the form of the API's domain errors."""
    return Response({"detail": detail}, status=status.HTTP_400_BAD_REQUEST)


def validated_input(serializer_class: type[BaseSerializer], request: Request) -> dict[str, Any]:
    """The request body through ``serializer_class``; a bad body answers 400 with the field errors."""
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class UnknownAssignee(Exception):
    """The assign action named nobody this installation knows."""


def assignee_named(request: Request, name: str | None) -> User | None:
    """The person an assign action names: ``"me"`` is the caller, a username that person, nothing (null or
    empty) nobody. Raises :class:`UnknownAssignee` for a name nobody has; whether the person may triage is
    the service's rule."""
    if not name:
        return None
    if name == "me":
        return acting_user(request)
    assignee = User.objects.filter(username=name).first()
    if assignee is None:
        raise UnknownAssignee(name)
    return assignee
