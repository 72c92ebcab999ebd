"""Django's admin site, for superusers only.

Role users (even the Security administrator, who is staff) never reach it: the admin edits rows directly,
around the audited services, so it could make anyone a superuser or bring a revoked token back without a
trace. Roles, logins and tokens change through the console and ``create_role_logins``; the admin stays a
break-glass view for whoever holds a superuser account.
"""

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import HttpRequest


class SuperuserAuthenticationForm(AdminAuthenticationForm):
    """The admin login signs in superusers only; anyone else gets the form's usual refusal."""

    def confirm_login_allowed(self, user: User) -> None:
        super().confirm_login_allowed(user)
        if not user.is_superuser:
            raise ValidationError(
                "This site is for superuser accounts only. Use the console to manage roles and tokens.",
                code="invalid_login",
            )


class SuperuserAdminSite(admin.AdminSite):
    site_header = "SOC console (superusers)"
    login_form = SuperuserAuthenticationForm

    def has_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)
