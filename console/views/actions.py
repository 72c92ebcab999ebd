"""The action center (Pending / History across investigations) and the action POSTs shared with the
investigation page: approve / reject one or many actions of one type, undo a completed reversible one,
close a manual step. Every POST first shows a confirmation (which collects the comment), then calls
:mod:`investigations.actions`; a message says what happened. Readers see no buttons and the server refuses
their POSTs (403)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from core.actors import acting_user
from core.exceptions import DomainError
from incidents.links import action_links
from investigations import actions as services
from investigations.filtersets import HISTORY, PENDING, RemediationActionFilterSet
from investigations.models import RemediationAction

from ..forms_actions import DecisionForm, ManualStepForm, UndoForm
from ..lists import FilteredListView, single_valued

VIEW = "investigations.view_remediationaction"
DECIDE = services.DECIDE_PERMISSION
UNDO = services.UNDO_PERMISSION
Status = RemediationAction.Status


def safe_next(request: HttpRequest, default: str) -> str:
    """The posted ``next`` URL when it points into this site, else ``default``."""
    candidate = request.POST.get("next", "")
    if candidate and url_has_allowed_host_and_scheme(
        candidate, {request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default


def confirm_page(request: HttpRequest, page: dict, *, status: int = 200) -> HttpResponse:
    """The one confirmation page: what will happen, to which actions, a comment box, confirm or cancel."""
    hidden = [*page.get("hidden", []), ("next", safe_next(request, page["cancel_url"]))]
    return render(request, "console/action_confirm.html", {**page, "hidden": hidden}, status=status)


def confirm_then(request: HttpRequest, page: dict, change: Callable[[], object]) -> HttpResponse | None:
    """The confirmation step of a change: ``page`` until the person confirms, then ``change()``; ``page``
    again with the error (HTTP 400) when the service refuses. None once the change is made."""
    if request.POST.get("confirm") != "yes":
        return confirm_page(request, page)
    try:
        change()
    except DomainError as exc:
        return confirm_page(request, {**page, "error": str(exc)}, status=400)
    return None


def _outcome(good: bool, yes: str, no: str) -> dict[str, Any]:
    """The confirm button of a two-way decision, and whether the comment is required: the bad outcome (reject,
    failed) needs a reason and is a danger button."""
    return {
        "comment_required": not good,
        "button_label": yes if good else no,
        "button_class": "" if good else "danger",
    }


def _form_errors(form: forms.Form) -> str:
    return "; ".join(" ".join(map(str, errors)) for errors in form.errors.values())


class ActionCenterView(FilteredListView):
    """Remediation actions across investigations: Pending by default, or History / any status; filters in the
    URL (the same as the API), bulk decisions across action types, undo, manual steps, CSV."""

    model = RemediationAction
    permission_required = VIEW
    template_name = "console/action_center.html"
    filterset_class = RemediationActionFilterSet
    hide_single_tenant = True
    paginate_by = 100
    csv_filename = "remediation-actions.csv"
    csv_columns = (
        ("id", lambda a: a.pk),
        ("tenant", lambda a: a.tenant.slug),
        ("investigation", lambda a: a.investigation_id),
        ("incident", lambda a: a.incident_id or ""),
        ("user", lambda a: a.investigation.mailbox.address),
        ("action", lambda a: a.action_type),
        ("target", lambda a: a.target_label),
        ("status", lambda a: a.effective_status),
        ("proposed", lambda a: a.proposed_at.isoformat()),
        ("expires", lambda a: a.expires_at.isoformat()),
        ("decided_by", lambda a: a.decided_by.get_username() if a.decided_by else ""),
        ("decided_at", lambda a: a.decided_at.isoformat() if a.decided_at else ""),
        ("comment", lambda a: a.decision_comment),
        ("attempts", lambda a: a.attempts),
        ("result", lambda a: a.result),
        ("manual_step", lambda a: a.manual_step),
        ("completed_at", lambda a: a.completed_at.isoformat() if a.completed_at else ""),
        ("undone_at", lambda a: a.undone_at.isoformat() if a.undone_at else ""),
    )

    def base_queryset(self) -> QuerySet:
        return action_links(
            RemediationAction.objects.with_related()
            .select_related("undone_by")
            .order_by("-proposed_at", "-id")
        )

    def get_queryset(self) -> QuerySet:
        data = single_valued(self.request.GET)
        data.setdefault("status", PENDING)  # an empty ``status=`` means every status
        self.filterset = self.filterset_class(data, queryset=self.base_queryset(), request=self.request)
        return self.filterset.qs

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        tab = self.request.GET.get("status", PENDING)
        context.update(
            tab=tab,
            # History holds decided actions only: nothing there can be decided, so no decision panel.
            show_bulk=tab != HISTORY,
            can_decide=self.request.user.has_perm(DECIDE),
            can_undo=self.request.user.has_perm(UNDO),
            next=self.request.get_full_path(),
        )
        return context


@require_POST
@permission_required(DECIDE, raise_exception=True)
def action_decide(request: HttpRequest) -> HttpResponse:
    """Approve or reject the posted ``ids`` (any action types, counted by type on the confirmation). First
    POST: a confirmation listing them, with the comment box; with ``confirm``: decide, all or nothing."""
    back = safe_next(request, reverse("console:action_center"))
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Nothing was decided. {_form_errors(form)}")
        return redirect(back)
    chosen = list(
        RemediationAction.objects.with_related().filter(pk__in=form.cleaned_data["ids"]).order_by("pk")
    )
    comment = form.cleaned_data["comment"]
    approve = form.approve
    problems = services.decision_problems(chosen, approve=approve, comment=comment, check_comment=False)
    if len(chosen) != len(form.cleaned_data["ids"]):
        problems.insert(0, "Some selected actions no longer exist.")
    if problems:
        messages.error(request, " ".join(problems))
        return redirect(back)
    count = len(chosen)
    noun = f"{count} action{'s' if count != 1 else ''}"
    by_type = Counter(action.get_action_type_display() for action in chosen)
    summary = ", ".join(f"{n} × {label}" for label, n in sorted(by_type.items()))
    page = {
        "heading": f"{'Approve' if approve else 'Reject'} {noun}?",
        "lede": (
            f"A worker carries out {'this action' if count == 1 else 'these actions'} through the tenant's "
            "connector as soon as you confirm."
            if approve
            else "Rejected actions are not carried out. Say why."
        ),
        "summary": summary if len(by_type) > 1 or count > 1 else "",
        "items": chosen,
        "post_url": reverse("console:action_decide"),
        "hidden": [("decision", form.cleaned_data["decision"]), *(("ids", a.pk) for a in chosen)],
        "comment": comment,
        "comment_label": "Comment (optional)"
        if approve
        else f"Why {'is it' if count == 1 else 'are they'} rejected? (required)",
        **_outcome(approve, "Approve", "Reject"),
        "cancel_url": back,
    }
    response = confirm_then(
        request,
        page,
        lambda: services.decide_actions(chosen, actor=acting_user(request), approve=approve, comment=comment),
    )
    if response is not None:
        return response
    if approve:
        done = RemediationAction.objects.filter(
            pk__in=[a.pk for a in chosen], status=Status.COMPLETED
        ).count()
        detail = f" {done} completed already." if done else " A worker is carrying them out."
        messages.success(request, f"{noun.capitalize()} approved.{detail}")
    else:
        messages.success(request, f"{noun.capitalize()} rejected.")
    return redirect(back)


def _posted_action(request: HttpRequest, pk: int) -> tuple[RemediationAction, str]:
    """The action a POST names, and where to go afterwards: the posted ``next``, else its investigation."""
    action = get_object_or_404(RemediationAction.objects.with_related(), pk=pk)
    return action, safe_next(request, reverse("console:investigation_detail", args=[action.investigation_id]))


@require_POST
@permission_required(UNDO, raise_exception=True)
def action_undo(request: HttpRequest, pk: int) -> HttpResponse:
    """Undo a completed reversible action. First POST: a confirmation with the comment box (required)."""
    action, back = _posted_action(request, pk)
    form = UndoForm(request.POST)
    form.is_valid()
    comment = form.cleaned_data.get("comment", "")
    if refusal := services.undo_refusal(action):
        messages.error(request, refusal)
        return redirect(back)
    page = {
        "heading": f"Undo “{action.get_action_type_display()}”?",
        "lede": "The target is put back as it was before the action ran (its saved prior state), through the "
        "tenant's connector.",
        "items": [action],
        "post_url": reverse("console:action_undo", args=[action.pk]),
        "hidden": [],
        "comment": comment,
        "comment_label": "Why is it undone? (required)",
        "comment_required": True,
        "button_label": "Undo",
        "button_class": "danger",
        "cancel_url": back,
    }
    response = confirm_then(
        request, page, lambda: services.request_undo(action, actor=acting_user(request), comment=comment)
    )
    if response is not None:
        return response
    action.refresh_from_db(fields=["status"])
    if action.status == Status.UNDONE:
        messages.success(request, f"“{action}” undone.")
    else:
        messages.success(request, f"Undo of “{action}” requested; a worker is carrying it out.")
    return redirect(back)


@require_POST
@permission_required(DECIDE, raise_exception=True)
def action_manual(request: HttpRequest, pk: int) -> HttpResponse:
    """Close a "Manual step required" action as done by hand or failed (a comment is required for failed)."""
    action, back = _posted_action(request, pk)
    form = ManualStepForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Nothing changed. {_form_errors(form)}")
        return redirect(back)
    if action.status != Status.MANUAL:
        messages.error(
            request, f"“{action}” is {action.get_status_display().lower()}, not waiting for a manual step."
        )
        return redirect(back)
    done = form.done
    page = {
        "heading": f"Mark “{action.get_action_type_display()}” as {'done' if done else 'failed'}?",
        "lede": "You confirm the manual step below was carried out by hand."
        if done
        else "The action ends as Failed. Say why the step could not be done.",
        "manual_step": action.manual_step,
        "items": [action],
        "post_url": reverse("console:action_manual", args=[action.pk]),
        "hidden": [("outcome", form.cleaned_data["outcome"])],
        "comment": form.cleaned_data["comment"],
        "comment_label": "Comment (optional)" if done else "What went wrong? (required)",
        **_outcome(done, "Mark done", "Mark failed"),
        "cancel_url": back,
    }
    response = confirm_then(
        request,
        page,
        lambda: services.mark_manual_action(
            action, actor=acting_user(request), done=done, comment=form.cleaned_data["comment"]
        ),
    )
    if response is not None:
        return response
    messages.success(request, f"“{action}” marked {'completed' if done else 'failed'}.")
    return redirect(back)
