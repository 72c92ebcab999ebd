"""What the apps' API actions share: a validated input body, a 400 answer in the API's ``{"detail": …}`` form,
the person an ``assign`` action names, and :class:`ServiceActionMixin` (an action that calls one service)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from core.actors import acting_user
from core.exceptions import DomainError

if TYPE_CHECKING:
    from rest_framework.viewsets import GenericViewSet

    _ViewBase = GenericViewSet
else:
    _ViewBase = object  # a mixin: the viewset it is mixed into brings get_object(), action and the rest


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


class ServiceActionMixin(_ViewBase):
    """For a viewset whose list shows ``serializer_class`` and everything else ``detail_serializer_class``,
    and whose ``POST`` actions each call one service on the object (the target first, the caller as
    ``actor=``): a domain error answers 400, success the object's fresh detail (read again through
    ``get_queryset()``)."""

    detail_serializer_class: type[BaseSerializer]

    def get_serializer_class(self) -> type[BaseSerializer]:
        return super().get_serializer_class() if self.action == "list" else self.detail_serializer_class

    def run_service(
        self,
        request: Request,
        service: Callable[..., object],
        input_class: type[BaseSerializer] | None = None,
        **arguments: Any,
    ) -> Response:
        """``service(object, actor=caller, **body, **arguments)``, the body validated by ``input_class``."""
        if input_class is not None:
            arguments = {**validated_input(input_class, request), **arguments}
        target = self.get_object()
        try:
            service(target, actor=acting_user(request), **arguments)
        except DomainError as exc:
            return bad_request(str(exc))
        return Response(self.detail_serializer_class(self.get_queryset().get(pk=target.pk)).data)

    def run_assign(
        self,
        request: Request,
        input_class: type[BaseSerializer],
        service: Callable[..., object],
        triaged: str,
    ) -> Response:
        """An ``assign`` action: ``service(object, actor=caller, assignee=…)`` with the person the body's
        ``assignee`` names (:func:`assignee_named`); a name nobody has answers 400."""
        name = validated_input(input_class, request)["assignee"]
        try:
            assignee = assignee_named(request, name)
        except UnknownAssignee:
            return bad_request(f"{name!r} is not a person who may triage {triaged}.")
        return self.run_service(request, service, assignee=assignee)
