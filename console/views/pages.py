"""The console's page base class, the audit log and the API-token pages. Views stay thin: authorize, read
through querysets, call services."""

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django.views.generic import TemplateView

from core.actors import acting_user
from core.models import ApiToken, AuditEvent
from core.services import create_api_token, revoke_api_token

from ..filtersets import AuditEventFilterSet
from ..forms import ApiTokenForm
from ..lists import FilteredListView
from .submit import call_service


class ConsolePage(PermissionRequiredMixin, TemplateView):
    permission_required = "core.view_console"
    raise_exception = True


class AuditLogView(FilteredListView):
    model = AuditEvent
    permission_required = "core.view_auditevent"
    template_name = "console/audit_log.html"
    filterset_class = AuditEventFilterSet
    csv_filename = "audit-log.csv"
    csv_columns = (
        ("time", lambda e: e.at.isoformat()),
        ("actor", lambda e: e.actor_label),
        ("action", lambda e: e.action),
        ("target_type", lambda e: e.target_type),
        ("target_id", lambda e: e.target_id),
        ("target", lambda e: e.target_repr),
        ("before", lambda e: e.before),
        ("after", lambda e: e.after),
        ("comment", lambda e: e.comment),
        ("request_id", lambda e: e.request_id),
    )

    def base_queryset(self) -> QuerySet:
        return AuditEvent.objects.select_related("tenant")


@never_cache  # a new token is shown once in this answer: no browser or proxy keeps a copy
@permission_required("core.view_apitoken", raise_exception=True)
def api_tokens(request: HttpRequest) -> HttpResponse:
    can_manage = request.user.has_perm("core.add_apitoken")
    form = ApiTokenForm(request.POST or None) if can_manage else None
    new_token = None
    if request.method == "POST":
        if not can_manage or form is None:
            raise PermissionDenied
        if form.is_valid():
            data = form.cleaned_data
            created = call_service(form, lambda: create_api_token(actor=acting_user(request), **data))
            if created is not None:
                token, new_token = created
                messages.success(
                    request, f"Token “{token.name}” created. Copy it now: it is not shown again."
                )
                form = ApiTokenForm()
    tokens = ApiToken.objects.select_related("tenant", "created_by")
    return render(
        request,
        "console/api_tokens.html",
        {"tokens": tokens, "form": form, "new_token": new_token, "can_manage": can_manage},
    )


@require_POST
@permission_required("core.change_apitoken", raise_exception=True)
def api_token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk)
    revoke_api_token(token, actor=acting_user(request))
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("console:api_tokens")
