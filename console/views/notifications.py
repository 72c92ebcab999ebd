"""The Notifications page: every role views the webhook endpoints (never their secrets) and the delivery log;
administrators create, disable and test endpoints.

A new endpoint's signing secret is rendered once, in the response to its creation (``no-store``), and never
again.
"""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from core.actors import acting_user
from core.exceptions import DomainError
from notifications.filtersets import WebhookDeliveryFilterSet
from notifications.models import WebhookDelivery, WebhookEndpoint
from notifications.services import create_endpoint, disable_endpoint, send_test_delivery

from ..forms_notifications import WebhookEndpointForm
from ..lists import FilteredListView
from .submit import call_service

VIEW = "notifications.view_webhookendpoint"
MANAGE = "notifications.change_webhookendpoint"


@method_decorator(never_cache, name="dispatch")
class NotificationsView(FilteredListView):
    """Endpoints with their create form above the filtered, paged delivery log (POST creates an endpoint)."""

    model = WebhookDelivery
    permission_required = VIEW
    template_name = "console/notifications.html"
    filterset_class = WebhookDeliveryFilterSet
    csv_filename = "webhook-deliveries.csv"
    csv_columns = (
        ("created", lambda d: d.created_at.isoformat()),
        ("endpoint", lambda d: d.endpoint.name),
        ("event", lambda d: d.kind),
        ("delivery_id", lambda d: d.delivery_id),
        ("status", lambda d: d.status),
        ("attempts", lambda d: d.attempts),
        ("response_code", lambda d: d.last_response_code),
        ("last_error", lambda d: d.last_error),
    )
    form = None
    new_secret = ""

    def base_queryset(self) -> QuerySet:
        return WebhookDelivery.objects.select_related("endpoint").defer("body")

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.has_perm("notifications.add_webhookendpoint"):
            return self.handle_no_permission()
        form = self.form = WebhookEndpointForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            added = call_service(form, lambda: create_endpoint(actor=acting_user(request), **data))
            if added is not None:
                endpoint, self.new_secret = added
                messages.success(request, f"Endpoint “{endpoint.name}” added. Copy its secret now.")
                self.form = None
        return self.get(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(
            endpoints=WebhookEndpoint.objects.select_related("tenant", "created_by").only(
                "name", "url", "secret_prefix", "event_kinds", "enabled", "created_at", "tenant", "created_by"
            ),
            form=(self.form or WebhookEndpointForm())
            if self.request.user.has_perm("notifications.add_webhookendpoint")
            else None,
            can_manage=self.request.user.has_perm(MANAGE),
            new_secret=self.new_secret,
            **kwargs,
        )


@require_POST
@permission_required(MANAGE, raise_exception=True)
def endpoint_disable(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = disable_endpoint(get_object_or_404(WebhookEndpoint, pk=pk), actor=acting_user(request))
    messages.success(request, f"Endpoint “{endpoint.name}” disabled.")
    return redirect("console:notifications")


@require_POST
@permission_required(MANAGE, raise_exception=True)
def endpoint_test(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    try:
        delivery = send_test_delivery(endpoint, actor=acting_user(request))
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Test delivery {delivery.delivery_id} queued to “{endpoint.name}”.")
    return redirect("console:notifications")
