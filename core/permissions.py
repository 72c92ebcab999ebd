"""DRF permissions: denied by default, and the same model permissions as the HTML console."""

from rest_framework import permissions

from .authentication import TokenPrincipal
from .models import ApiToken


class DenyAll(permissions.BasePermission):
    """The default for every API view: a view must name what it allows."""

    def has_permission(self, request, view) -> bool:
        return False


class RolePermission(permissions.BasePermission):
    """Reads need the view's ``read_permission``; each unsafe action needs ``action_permissions[action]``."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        if request.method in permissions.SAFE_METHODS:
            required = view.read_permission
        else:
            required = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        return bool(required) and user.has_perm(required)


class CanIngest(permissions.BasePermission):
    """Writing events: an ingest token, or a person who may write events (administrators)."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if isinstance(user, TokenPrincipal):
            return user.token.scope == ApiToken.Scope.INGEST
        return bool(user and user.is_authenticated and user.has_perm("mailflow.add_messageevent"))


def tenant_of(request):
    """The tenant a token is bound to, else None (a person may name one)."""
    return request.user.tenant if isinstance(request.user, TokenPrincipal) else None
