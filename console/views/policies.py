"""Alert policy pages: the tenant's policies (seeded when the tenant is created, never on a read) and one
policy's settings and per-mailbox overrides. Administrators edit them through forms that call
:mod:`alerts.services`; everyone else reads them and a forged POST gets 403."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from alerts import policy_services
from alerts.exceptions import PolicyValidationError
from alerts.models import AlertPolicy, PolicyOverride
from alerts.policies import DEFAULTS_BY_KIND, Threshold
from core.actors import acting_user
from core.models import AuditEvent, Tenant

from ..forms_policies import PolicyForm, PolicyOverrideForm

VIEW = "alerts.view_alertpolicy"
CHANGE = "alerts.change_alertpolicy"
HISTORY_CAP = 50


@permission_required(VIEW, raise_exception=True)
def policy_list(request: HttpRequest) -> HttpResponse:
    """The chosen tenant's policies (``?tenant=<slug>``, default the default tenant), sorted by name."""
    tenants = list(Tenant.objects.all())
    tenant = (
        next((t for t in tenants if t.slug == request.GET.get("tenant")), None) or Tenant.objects.default()
    )
    policies = AlertPolicy.objects.filter(tenant=tenant).prefetch_related("overrides").order_by("name")
    rows = [(policy, [(key, policy.thresholds.get(key)) for key in _spec(policy)]) for policy in policies]
    return render(
        request,
        "console/policies.html",
        {"rows": rows, "tenant": tenant, "tenants": tenants if len(tenants) > 1 else []},
    )


def _spec(policy: AlertPolicy) -> dict[str, Threshold]:
    """The thresholds a policy of this kind has, in their documented order."""
    return dict(DEFAULTS_BY_KIND[policy.kind].thresholds) if policy.kind in DEFAULTS_BY_KIND else {}


def _policy(pk: int) -> AlertPolicy:
    return get_object_or_404(
        AlertPolicy.objects.select_related("tenant").prefetch_related("overrides"), pk=pk
    )


def _render_detail(
    request: HttpRequest,
    policy: AlertPolicy,
    form: PolicyForm | None = None,
    override_form: PolicyOverrideForm | None = None,
) -> HttpResponse:
    can_edit = request.user.has_perm(CHANGE)
    spec = _spec(policy)
    context = {
        "policy": policy,
        "thresholds": [(key, policy.thresholds.get(key), limits) for key, limits in spec.items()],
        "overrides": policy.overrides.all(),
        "now": timezone.now(),
        "history": AuditEvent.objects.for_target(policy)[:HISTORY_CAP],
        "can_edit": can_edit,
        "form": (form or PolicyForm(policy=policy)) if can_edit else None,
        "override_form": (override_form or PolicyOverrideForm(policy=policy)) if can_edit and spec else None,
    }
    return render(request, "console/policy_detail.html", context)


def _saved[T](form: PolicyForm | PolicyOverrideForm, save: Callable[[], T]) -> T | None:
    """Validate the form, then save through the service and return what it saved; None when the form or the
    service refused (the service's errors go back on the form's fields)."""
    if not form.is_valid():
        return None
    try:
        return save()
    except PolicyValidationError as exc:
        form.add_service_errors(exc.errors)
        return None


@permission_required(VIEW, raise_exception=True)
def policy_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """Every setting and override; a POST (administrators) saves the settings form through the service."""
    policy = _policy(pk)
    if request.method != "POST":
        return _render_detail(request, policy)
    if not request.user.has_perm(CHANGE):
        raise PermissionDenied
    form = PolicyForm(request.POST, policy=policy)
    if _saved(
        form, lambda: policy_services.update_policy(policy, actor=acting_user(request), **form.changes())
    ):
        messages.success(request, f"“{policy.name}” saved.")
        return redirect("console:policy_detail", pk=policy.pk)
    return _render_detail(request, policy, form=form)


@require_POST
@permission_required(CHANGE, raise_exception=True)
def policy_override_add(request: HttpRequest, pk: int) -> HttpResponse:
    """Give one mailbox its own thresholds (replacing its previous override), optionally until a date."""
    policy = _policy(pk)
    form = PolicyOverrideForm(request.POST, policy=policy)
    override = _saved(
        form,
        lambda: policy_services.set_policy_override(policy, actor=acting_user(request), **form.override()),
    )
    if override is not None:
        messages.success(request, f"Override for {override.mailbox_address} saved.")
        return redirect("console:policy_detail", pk=policy.pk)
    return _render_detail(request, policy, override_form=form)


@require_POST
@permission_required(CHANGE, raise_exception=True)
def policy_override_remove(request: HttpRequest, pk: int, override_pk: int) -> HttpResponse:
    override = get_object_or_404(
        PolicyOverride.objects.select_related("policy__tenant"), pk=override_pk, policy_id=pk
    )
    policy_services.remove_policy_override(override, actor=acting_user(request))
    messages.success(request, f"Override for {override.mailbox_address} removed.")
    return redirect("console:policy_detail", pk=pk)
