"""Django's admin site, for superusers only.

Role users (even the Security administrator, who is staff) never reach it: the admin edits rows directly,
around the audited services, so it could make anyone a superuser or bring a revoked token back without a
trace. Roles, logins and tokens change through the console and ``create_role_logins``; the admin stays a
break-glass view for whoever holds a superuser account.
"""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest


class SuperuserAdminSite(admin.AdminSite):
    site_header = "SOC console (superusers)"

    def has_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)


class SuperuserAdminConfig(AdminConfig):
    default_site = "soc_console.admin.SuperuserAdminSite"
