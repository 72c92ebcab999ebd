"""Investigations: the list, an investigation's page in tabs (overview, graph, alerts, mailbox, evidence,
clusters and a page per cluster, analyzer log, history; see :mod:`console.investigation_page`), its status
panel polled by htmx while the analyzers run, and the operators' stop. Every change goes through
:mod:`investigations.services` / :mod:`investigations.actions`; readers see the same pages without the
buttons, and the server refuses their POSTs (403)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import HttpResponseClientRefresh

from core.actors import acting_user
from core.exceptions import DomainError
from core.models import Tenant
from incidents.links import investigation_links
from investigations import actions as action_services
from investigations import services
from investigations.actions import DECIDE_PERMISSION, UNDO_PERMISSION
from investigations.filtersets import InvestigationFilterSet
from investigations.models import Finding, Investigation, MailCluster, RemediationAction
from restricted_users.models import Restriction

from .. import investigation_page as page
from ..forms_actions import StopInvestigationForm
from ..lists import FilteredListView
from .actions import confirm_then, safe_next

VIEW = "investigations.view_investigation"
STOP = action_services.STOP_PERMISSION
IN_PROGRESS = (Investigation.Status.QUEUED, Investigation.Status.RUNNING)


def _duration_seconds(investigation: Investigation) -> str:
    duration = investigation.duration
    return f"{duration.total_seconds():.0f}" if duration is not None else ""


class InvestigationListView(FilteredListView):
    """Investigations with their threat and action counts (annotated), filtered in the URL (the same
    filters as the API), sortable, exportable."""

    model = Investigation
    permission_required = VIEW
    template_name = "console/investigations.html"
    filterset_class = InvestigationFilterSet
    hide_single_tenant = True
    csv_filename = "investigations.csv"
    csv_columns = (
        ("id", lambda i: i.pk),
        ("tenant", lambda i: i.tenant.slug),
        ("status", lambda i: i.status),
        ("verdict", lambda i: i.verdict),
        ("risk_score", lambda i: i.risk_score),
        ("user", lambda i: i.mailbox.address),
        ("trigger", lambda i: i.trigger_alert.title if i.trigger_alert else "started by hand"),
        ("created", lambda i: i.created_at.isoformat()),
        ("last_changed", lambda i: i.updated_at.isoformat()),
        ("threats", lambda i: i.threat_count),
        ("actions", lambda i: i.action_count),
        ("pending_actions", lambda i: i.pending_count),
        ("duration_seconds", _duration_seconds),
        ("incident", lambda i: i.incident_id or ""),
    )

    def base_queryset(self) -> QuerySet:
        return investigation_links(Investigation.objects.with_related())


def _frame_context(request: HttpRequest, investigation: Investigation, tab: str) -> dict:
    """What every tab shows around its content: the heading, the tabs, counts, the release callout and the
    role's permissions."""
    restriction = Restriction.objects.active().for_mailbox(investigation.mailbox).first()
    counts = investigation.actions.aggregate(
        total=Count("pk"), open=Count("pk", filter=Q(status__in=RemediationAction.OPEN_STATUSES))
    )
    return {
        "investigation": investigation,
        "tab": tab,
        "tabs": page.tabs_of(investigation.pk, tab),
        "in_progress": investigation.status in IN_PROGRESS,
        "single_tenant": Tenant.objects.is_single(),
        "threat_count": investigation.findings.exclude(verdict=Finding.Verdict.CLEAN).count(),
        "action_count": counts["total"],
        "open_count": counts["open"],
        "runs": list(investigation.runs.all()) if tab == "overview" else [],
        "mailbox_url": page.optional_url("console:mailbox_detail", investigation.mailbox_id),
        "restriction": restriction,
        "offer_release": restriction is not None and investigation.status == Investigation.Status.REMEDIATED,
        "can_decide": request.user.has_perm(DECIDE_PERMISSION),
        "can_undo": request.user.has_perm(UNDO_PERMISSION),
        "can_stop": request.user.has_perm(STOP) and investigation.status in Investigation.OPEN_STATUSES,
        "next": request.get_full_path(),
    }


def _investigation(pk: int) -> Investigation:
    queryset = investigation_links(
        Investigation.objects.with_related().select_related("stopped_by", "trigger_alert__policy")
    )
    return get_object_or_404(queryset, pk=pk)


def _render_tab(request: HttpRequest, pk: int, tab: str) -> HttpResponse:
    investigation = _investigation(pk)
    context = _frame_context(request, investigation, tab)
    context.update(page.tab_context(investigation, tab))
    if tab == "overview":
        actions = context["actions"]
        context["open_actions"] = [
            a for a in actions if a.effective_status in RemediationAction.OPEN_STATUSES
        ]
        context["decided_actions"] = [
            a for a in actions if a.effective_status not in RemediationAction.OPEN_STATUSES
        ]
    return render(request, "console/investigation_detail.html", context)


@require_safe
@permission_required(VIEW, raise_exception=True)
def investigation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The Overview tab: key findings, status, summary, and the actions (decide; undo a completed one)."""
    return _render_tab(request, pk, "overview")


@require_safe
@permission_required(VIEW, raise_exception=True)
def investigation_tab(request: HttpRequest, pk: int, tab: str) -> HttpResponse:
    """Another tab of the investigation, at its own URL."""
    if tab not in page.TAB_NAMES or tab == "overview":
        raise Http404("No such section.")
    return _render_tab(request, pk, tab)


@require_safe
@permission_required(VIEW, raise_exception=True)
def investigation_cluster(request: HttpRequest, pk: int, cluster_pk: int) -> HttpResponse:
    """One mail cluster of the investigation with its messages (the first few hundred)."""
    investigation = _investigation(pk)
    cluster = get_object_or_404(
        MailCluster.objects.select_related("investigation"), pk=cluster_pk, investigation=investigation
    )
    context = _frame_context(request, investigation, "clusters")
    context.update(
        cluster=cluster,
        cluster_messages=page.cluster_messages(cluster),
        messages_cap=page.CLUSTER_MESSAGES_CAP,
        stored_ids=len(cluster.event_ids or []),
    )
    return render(request, "console/investigation_cluster.html", context)


@permission_required(VIEW, raise_exception=True)
def investigation_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The status panel alone, polled every 2 s by htmx while the analyzers run. Once they have finished, htmx
    is told to reload the page, so the findings and proposed actions appear without a frozen page."""
    investigation = _investigation(pk)
    if getattr(request, "htmx", None) and investigation.status not in IN_PROGRESS:
        return HttpResponseClientRefresh()
    context = {
        "investigation": investigation,
        "in_progress": investigation.status in IN_PROGRESS,
        "runs": list(investigation.runs.all()),
    }
    return render(request, "console/_investigation_status.html", context)


@require_POST
@permission_required(STOP, raise_exception=True)
def investigation_stop(request: HttpRequest, pk: int) -> HttpResponse:
    """First POST: a confirmation asking for the reason. With ``confirm``: stop, back to the page."""
    investigation = _investigation(pk)
    back = reverse("console:investigation_detail", args=[investigation.pk])
    form = StopInvestigationForm(request.POST)
    form.is_valid()
    comment = form.cleaned_data.get("comment", "")
    page = {
        "heading": f"Stop investigation #{investigation.pk}?",
        "lede": f"The investigation of {investigation.mailbox.address} ends as “Terminated by user”; its "
        "undecided actions (pending, approved, manual) are rejected with your comment. Actions already "
        "running finish and say so.",
        "items": [
            a for a in investigation.actions.with_related() if a.status in action_services.STOP_REJECTS
        ],
        "post_url": reverse("console:investigation_stop", args=[investigation.pk]),
        "hidden": [],
        "comment": comment,
        "comment_label": "Why is it stopped? (required)",
        "comment_required": True,
        "button_label": "Stop investigation",
        "button_class": "danger",
        "cancel_url": back,
    }
    response = confirm_then(
        request,
        page,
        lambda: action_services.stop_investigation(
            investigation, actor=acting_user(request), comment=comment
        ),
    )
    if response is not None:
        return response
    messages.success(
        request, f"Investigation #{investigation.pk} stopped; its undecided actions were rejected."
    )
    return redirect(safe_next(request, back))


@require_POST
@permission_required("investigations.start_investigation", raise_exception=True)
def investigation_start(request: HttpRequest) -> HttpResponse:
    """An operator starts ("Admin triggered user compromise investigation") on the posted mailbox."""
    from mailboxes.models import Mailbox

    mailbox = get_object_or_404(Mailbox, pk=request.POST.get("mailbox") or 0)
    try:
        investigation = services.start_investigation_by_hand(
            mailbox, actor=acting_user(request), comment=request.POST.get("comment", "")
        )
    except DomainError as exc:
        messages.error(request, str(exc))
        return redirect("console:mailbox_detail", pk=mailbox.pk)
    messages.success(request, f"Investigation #{investigation.pk} of {mailbox.address} started.")
    return redirect("console:investigation_detail", pk=investigation.pk)
