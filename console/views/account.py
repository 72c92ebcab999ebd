"""The signed-in person's own account: changing their password (every role), and the page a locked-out
sign-in gets instead of the login form (django-axes calls :func:`locked_out`)."""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordChangeForm
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse_lazy

from core.actors import acting_user
from core.services import record_audit


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's password change (old password, new one twice, the validators), audited; the session stays."""

    template_name = "registration/password_change_form.html"
    success_url = reverse_lazy("password_change_done")

    def form_valid(self, form: PasswordChangeForm) -> HttpResponse:
        with transaction.atomic():
            response = super().form_valid(form)
            record_audit(
                "core.login.password_changed",
                target=acting_user(self.request),
                actor=acting_user(self.request),
            )
        return response


class PasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "registration/password_change_done.html"


def locked_out(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: object = None
) -> HttpResponse:
    """429 with the cool-off in minutes; the same page whether or not the password was right."""
    minutes = math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    return render(
        request,
        "registration/locked_out.html",
        {"minutes": minutes, "failure_limit": settings.AXES_FAILURE_LIMIT},
        status=429,
    )
