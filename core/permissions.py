"""DRF permissions: denied by default, and the same model permissions as the HTML console."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet
from rest_framework import permissions
from rest_framework.request import Request

from .authentication import TokenPrincipal
from .models import ApiToken, Tenant

if TYPE_CHECKING:
    from rest_framework.generics import GenericAPIView
    from rest_framework.views import APIView

    _ViewBase = GenericAPIView
else:
    _ViewBase = object  # a mixin: the viewset it is mixed into brings ``request`` and the rest


class DenyAll(permissions.BasePermission):
    """The default for every API view: a view must name what it allows."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return False


class RolePermission(permissions.BasePermission):
    """Reads need the view's ``read_permission``; each unsafe action needs ``action_permissions[action]``."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        if request.method in permissions.SAFE_METHODS:
            required = getattr(view, "read_permission", None)
        else:
            required = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        return user.has_perm(required) if required else False


class CanIngest(permissions.BasePermission):
    """Writing events: an ingest token, or a person who may write events (administrators)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if isinstance(user, TokenPrincipal):
            return user.token.scope == ApiToken.Scope.INGEST
        return bool(user and user.is_authenticated and user.has_perm("mailflow.add_messageevent"))


def tenant_of(request: Request) -> Tenant | None:
    """The tenant a token is bound to, else None (a person may name one)."""
    return request.user.tenant if isinstance(request.user, TokenPrincipal) else None


def for_request(queryset: QuerySet, request: Request, tenant_field: str = "tenant") -> QuerySet:
    """``queryset`` as ``request`` may see it: a token bound to a tenant sees that tenant's rows only; a
    person sees every tenant's (their role decides what; ``?tenant=`` narrows a list)."""
    tenant = tenant_of(request)
    return queryset if tenant is None else queryset.filter(**{tenant_field: tenant})


class TenantScopedMixin(_ViewBase):
    """For an API viewset: it defines ``base_queryset()``; ``get_queryset()`` is that, scoped to the tenant of
    the request's token (:func:`for_request`), so no viewset can forget the scoping."""

    tenant_field = "tenant"

    def base_queryset(self) -> QuerySet:
        raise NotImplementedError

    def get_queryset(self) -> QuerySet:
        return for_request(self.base_queryset(), self.request, self.tenant_field)
