"""Restricted users: the list, a restriction's detail (why, its alerts, the mail around the breach, history,
audit) and the administrators' release flow (form, confirmation, release) and restrict-by-hand endpoint. Every
change goes through :mod:`restricted_users.services`; others see the pages without the forms, and the server
refuses their POSTs (403)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateparse import parse_datetime
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from alerts.models import Alert
from core.actors import acting_user
from core.exceptions import DomainError
from core.models import AuditEvent, Tenant
from incidents.links import restriction_links
from mailflow.models import MessageEvent
from restricted_users import services
from restricted_users.filtersets import RestrictionFilterSet
from restricted_users.models import CHECKLIST_ITEMS, Restriction

from .. import presenters
from ..forms_restricted import ReleaseForm, RestrictByHandForm
from ..lists import FilteredListView, single_valued

VIEW = "restricted_users.view_restriction"
RELEASE = "restricted_users.release_restriction"
RESTRICT = "restricted_users.add_restriction"
MESSAGES_CAP = 100
OTHER_ALERTS_CAP = 20
HISTORY_CAP = 50
AUDIT_CAP = 100
# Without a window in its reason (a restriction by hand), the mail of the day before it was placed is shown.
DEFAULT_MESSAGE_WINDOW = timedelta(hours=24)
REASON_LABELS = {
    "limit_name": "Limit",
    "limit": "Threshold",
    "count": "Count",
    "window_start": "Window start (UTC)",
    "window_end": "Window end (UTC)",
    "text": "Reason given",
}


class RestrictedUserListView(FilteredListView):
    """Restrictions, by default those in force now; search, state, sort, tenant (when several), CSV."""

    model = Restriction
    permission_required = VIEW
    template_name = "console/restricted_users.html"
    filterset_class = RestrictionFilterSet
    csv_filename = "restricted-users.csv"
    csv_columns = (
        ("id", lambda r: r.pk),
        ("tenant", lambda r: r.tenant.slug),
        ("user", lambda r: r.mailbox.address),
        ("display_name", lambda r: r.mailbox.display_name),
        ("state", lambda r: r.state),
        ("policy", lambda r: r.policy_name),
        ("source", lambda r: r.source),
        ("placed_by", lambda r: r.placed_by_label),
        ("placed_at", lambda r: r.placed_at.isoformat()),
        ("expires_at", lambda r: r.expires_at.isoformat() if r.expires_at else "until released"),
        ("released_at", lambda r: r.released_at.isoformat() if r.released_at else ""),
        ("released_by", lambda r: r.released_by.get_username() if r.released_by else ""),
        ("release_reason", lambda r: r.release_reason),
        ("release_flagged", lambda r: r.release_flagged),
        ("incident", lambda r: r.incident_id or ""),
        ("investigation", lambda r: r.investigation_id or ""),
    )

    def base_queryset(self) -> QuerySet:
        return restriction_links(Restriction.objects.with_related())

    def get_queryset(self) -> QuerySet:
        self.single_tenant = Tenant.objects.is_single()
        data = single_valued(self.request.GET)
        data.setdefault("state", Restriction.State.ACTIVE)  # an empty ``state=`` means every state
        self.filterset = self.filterset_class(
            data, queryset=self.base_queryset(), request=self.request, show_tenant=not self.single_tenant
        )
        # Kept through filter changes (a mailbox page links here with ?mailbox=<id>) but not typed by people.
        mailbox_field = self.filterset.form.fields["mailbox"]
        mailbox_field.widget, mailbox_field.label = forms.HiddenInput(), ""
        return self.filterset.qs

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(single_tenant=self.single_tenant, **kwargs)


def _parse_time(value: object) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) else None


def _reason_rows(reason: dict) -> list[tuple[str, object]]:
    """The reason's values as (label, value) rows in words, known keys first; times stay datetimes (the
    template shows them as UTC), counts carry their unit. ``counts`` is shown as its own table."""
    rows: list[tuple[str, object]] = []
    for key, label in REASON_LABELS.items():
        if key in reason:
            parsed = _parse_time(reason[key]) if key.startswith("window_") else None
            rows.append((label, parsed or presenters.value_text(reason[key], key)))
    rows += [
        (presenters.key_label(key), presenters.value_text(value, key))
        for key, value in reason.items()
        if key not in REASON_LABELS and key != "counts"
    ]
    return rows


def _reason_counts(reason: dict) -> list[tuple[str, str]]:
    """The measures counted in the window, each labelled and with its unit."""
    counts = reason.get("counts")
    if not isinstance(counts, dict):
        return []
    return [
        (presenters.key_label(str(name)), presenters.value_text(value, "count"))
        for name, value in counts.items()
    ]


def _message_window(restriction: Restriction) -> tuple[datetime, datetime]:
    start = _parse_time(restriction.reason.get("window_start"))
    end = _parse_time(restriction.reason.get("window_end"))
    if start is None or end is None:
        return restriction.placed_at - DEFAULT_MESSAGE_WINDOW, restriction.placed_at
    return start, end


def _release_context(request: HttpRequest, restriction: Restriction, form: ReleaseForm | None) -> dict:
    """The release panel: shown to administrators while the restriction is in force."""
    if not restriction.is_active():
        return {"release_form": None}
    if not request.user.has_perm(RELEASE):
        # Say who can act instead of showing nothing: releasing is an administrator's decision.
        return {"release_form": None, "release_needs_admin": True}
    auto = services.checklist_auto_ticks(restriction)
    released = services.releases_within_cap_window(restriction.mailbox)
    past_cap = services.past_release_cap(released)
    return {
        "release_form": form or ReleaseForm(auto_ticks=auto, past_cap=past_cap),
        "auto_ticks": [(CHECKLIST_ITEMS[item], proof) for item, proof in auto.items()],
        "releases_in_window": released,
        "past_cap": past_cap,
        "release_cap": settings.RELEASE_CAP_COUNT,
        "release_cap_days": settings.RELEASE_CAP_DAYS,
    }


def _detail_context(request: HttpRequest, restriction: Restriction, form: ReleaseForm | None = None) -> dict:
    mailbox = restriction.mailbox
    start, end = _message_window(restriction)
    mail = MessageEvent.objects.filter(tenant_id=restriction.tenant_id).sent_by(mailbox).between(start, end)
    others = Alert.objects.with_related().filter(mailbox=mailbox).exclude(restriction=restriction)
    checklist = [(CHECKLIST_ITEMS.get(item, item), entry) for item, entry in restriction.checklist.items()]
    return {
        "restriction": restriction,
        "single_tenant": Tenant.objects.is_single(),
        "reason_rows": _reason_rows(restriction.reason),
        "reason_counts": _reason_counts(restriction.reason),
        "alerts": Alert.objects.with_related().filter(restriction=restriction),
        "message_window": (start, end),
        "messages_around": mail.order_by("-time", "-id")[:MESSAGES_CAP],
        "message_count": mail.count(),
        "messages_cap": MESSAGES_CAP,
        "other_alerts": others[:OTHER_ALERTS_CAP],
        "other_alert_count": others.count(),
        "history": Restriction.objects.with_related()
        .for_mailbox(mailbox)
        .exclude(pk=restriction.pk)[:HISTORY_CAP],
        "checklist": checklist,
        "audit_events": AuditEvent.objects.for_target(restriction)[:AUDIT_CAP],
        **_release_context(request, restriction, form),
    }


@permission_required(VIEW, raise_exception=True)
def restricted_user_detail(request: HttpRequest, pk: int) -> HttpResponse:
    restriction = get_object_or_404(restriction_links(Restriction.objects.with_related()), pk=pk)
    return render(request, "console/restriction_detail.html", _detail_context(request, restriction))


@require_POST
@permission_required(RELEASE, raise_exception=True)
def restriction_release(request: HttpRequest, pk: int) -> HttpResponse:
    """First POST: check and show a confirmation. With ``confirm``: release at once, back to the detail."""
    restriction = get_object_or_404(Restriction.objects.with_related(), pk=pk)
    auto = services.checklist_auto_ticks(restriction)
    past_cap = services.past_release_cap(services.releases_within_cap_window(restriction.mailbox))
    form = ReleaseForm(request.POST, auto_ticks=auto, past_cap=past_cap)
    if form.is_valid():
        arguments = {
            "actor": request.user,
            "reason": form.cleaned_data["reason"],
            "attestations": form.attestations(),
            "override_reason": form.cleaned_data.get("override_reason", ""),
            "resolve_alerts": not form.cleaned_data.get("keep_alerts_open"),
            "keep_alerts_reason": form.cleaned_data.get("keep_alerts_reason", ""),
        }
        try:
            if request.POST.get("confirm") != "yes":
                plan = services.plan_release(restriction, **arguments)
                return render(
                    request,
                    "console/restriction_release_confirm.html",
                    {
                        "restriction": restriction,
                        "plan": plan,
                        "checklist": [
                            (CHECKLIST_ITEMS[item], entry) for item, entry in plan.checklist.items()
                        ],
                        "reason": arguments["reason"],
                        "override_reason": arguments["override_reason"],
                        "hidden_fields": form.resubmission(),
                    },
                )
            services.release_user(restriction, **arguments)
        except DomainError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request, f"{restriction.mailbox.address} is released and can send mail again now."
            )
            return redirect("console:restricted_user_detail", pk=restriction.pk)
    return render(
        request, "console/restriction_detail.html", _detail_context(request, restriction, form), status=400
    )


@require_POST
@permission_required(RESTRICT, raise_exception=True)
def restrict_by_hand(request: HttpRequest) -> HttpResponse:
    """Restrict the posted mailbox, then show the restriction; on an error back to ``next`` (this site)."""
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, require_https=request.is_secure()):
        next_url = ""
    form = RestrictByHandForm(request.POST)
    if not form.is_valid():
        problems = "; ".join(f"{name}: {' '.join(map(str, errors))}" for name, errors in form.errors.items())
        messages.error(request, f"Nothing changed. {problems}")
        return redirect(next_url or "console:restricted_users")
    try:
        restriction, created = services.restrict_by_hand(
            form.cleaned_data["mailbox"],
            actor=acting_user(request),
            reason_text=form.cleaned_data["reason"],
            until_released=form.until_released(),
        )
    except DomainError as exc:
        messages.error(request, str(exc))
        return redirect(next_url or "console:restricted_users")
    if created:
        messages.success(request, f"{restriction.mailbox.address} is restricted from sending.")
    else:
        messages.info(
            request, f"{restriction.mailbox.address} was already restricted; nothing new was placed."
        )
    return redirect("console:restricted_user_detail", pk=restriction.pk)
