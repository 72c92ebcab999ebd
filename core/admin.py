"""Read-only admin views of core (the admin site is for superusers only, see ``soc_console.admin``).

Tenants and API tokens change through :mod:`core.services` (audited); the audit trail never changes.
"""

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from .models import ApiToken, AuditEvent, Tenant


class ReadOnlyAdmin(admin.ModelAdmin):
    """An admin page that shows rows and changes none: writes go through the services (audited)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Tenant)
class TenantAdmin(ReadOnlyAdmin):
    list_display = ["name", "slug", "is_default", "connector_kind"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor_label", "action", "target_repr"]
    list_filter = ["action"]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ["name", "tenant", "scope", "prefix", "created_at", "revoked_at"]
    exclude = ["key_hash"]
