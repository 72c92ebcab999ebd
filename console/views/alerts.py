"""The alert list, the alert detail page and its triage forms. Every change goes through
:mod:`alerts.services`; readers see the same pages without the forms, and the server refuses their POSTs
(403)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.contrib.auth.models import User
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from alerts import services
from alerts.filtersets import AlertFilterSet
from alerts.models import Alert, AlertComment, AlertEvidence
from core.actors import acting_user
from core.exceptions import DomainError
from core.models import AuditEvent, Tenant
from incidents.links import alert_links
from mailflow.models import MessageEvent

from ..alert_details import describe_details
from ..forms_alerts import (
    AlertAssignForm,
    AlertBulkForm,
    AlertCommentForm,
    AlertResolveForm,
    AlertStatusForm,
    TriageForm,
)
from ..lists import FilteredListView
from .triage import Change, Triage

TRIAGE = "alerts.triage_alert"
EVIDENCE_CAP = 200
OTHER_ALERTS_CAP = 20
HISTORY_CAP = 100


class AlertListView(FilteredListView):
    """Alerts across tenants, filtered in the URL (the same filters as the API), sortable, exportable."""

    model = Alert
    permission_required = "alerts.view_alert"
    template_name = "console/alerts.html"
    filterset_class = AlertFilterSet
    hide_single_tenant = True
    csv_filename = "alerts.csv"
    csv_columns = (
        ("id", lambda a: a.pk),
        ("tenant", lambda a: a.tenant.slug),
        ("title", lambda a: a.title),
        ("severity", lambda a: a.severity),
        ("status", lambda a: a.status),
        ("classification", lambda a: a.classification),
        ("policy", lambda a: a.policy.kind),
        ("category", lambda a: a.category),
        ("user", lambda a: a.mailbox.address),
        ("first_activity", lambda a: a.first_activity_at.isoformat()),
        ("last_activity", lambda a: a.last_activity_at.isoformat()),
        ("events", lambda a: a.evidence_count),
        ("assigned_to", lambda a: a.assigned_to.get_username() if a.assigned_to else ""),
        ("restriction", lambda a: a.restriction_id or ""),
        ("incident", lambda a: a.incident_id or ""),
        ("investigation", lambda a: a.investigation_id or ""),
    )

    def base_queryset(self) -> QuerySet:
        return alert_links(Alert.objects.with_related())

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["show_links"] = True
        context["can_triage"] = self.request.user.has_perm(TRIAGE)
        context["bulk_form"] = AlertBulkForm() if context["can_triage"] else None
        context["next"] = self.request.get_full_path()
        return context


@dataclass(frozen=True)
class EvidenceRow:
    """One evidence event; for a message, the stored message event it names (None when not retained)."""

    evidence: AlertEvidence
    message: MessageEvent | None = None


def evidence_rows(alert: Alert) -> list[EvidenceRow]:
    """The alert's first :data:`EVIDENCE_CAP` evidence events, messages joined by (tenant, event id)."""
    items = list(alert.evidence.all()[:EVIDENCE_CAP])
    ids = [e.event_id for e in items if e.kind == AlertEvidence.Kind.MESSAGE]
    found = {m.event_id: m for m in MessageEvent.objects.filter(tenant_id=alert.tenant_id, event_id__in=ids)}
    return [
        EvidenceRow(e, found.get(e.event_id) if e.kind == AlertEvidence.Kind.MESSAGE else None) for e in items
    ]


def next_in_queue(alert: Alert) -> Alert | None:
    """The open alert after ``alert`` in the queue's default order (latest activity first), else the first
    open one: where an analyst goes after a decision."""
    queue = (
        Alert.objects.open()
        .select_related("mailbox")
        .exclude(pk=alert.pk)
        .order_by("-last_activity_at", "-id")
    )
    after = queue.filter(last_activity_at__lte=alert.last_activity_at).first()
    return after or queue.first()


def _detail_context(alert: Alert, request: HttpRequest) -> dict:
    others = Alert.objects.with_related().filter(mailbox_id=alert.mailbox_id).exclude(pk=alert.pk)
    can_triage = request.user.has_perm(TRIAGE)
    return {
        "alert": alert,
        "details": describe_details(alert.details),
        "evidence": evidence_rows(alert),
        "evidence_cap": EVIDENCE_CAP,
        "other_alerts": others[:OTHER_ALERTS_CAP],
        "other_alert_count": others.count(),
        "comments": alert.comments.all(),
        "history": AuditEvent.objects.for_target(alert)[:HISTORY_CAP],
        "can_triage": can_triage,
        "single_tenant": Tenant.objects.is_single(),
        "status_form": AlertStatusForm(initial={"status": alert.status}) if can_triage else None,
        "comment_form": AlertCommentForm() if can_triage else None,
        "resolve_form": AlertResolveForm() if can_triage else None,
        "next_alert": next_in_queue(alert),
    }


@require_safe
@permission_required("alerts.view_alert", raise_exception=True)
def alert_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The alert with its details, evidence, the user's other alerts, comments and history; triage forms for
    people who may triage."""
    queryset = alert_links(Alert.objects.with_related().select_related("resolved_by"))
    queryset = queryset.prefetch_related(Prefetch("comments", AlertComment.objects.select_related("author")))
    alert = get_object_or_404(queryset, pk=pk)
    return render(request, "console/alert_detail.html", _detail_context(alert, request))


class AlertTriage(Triage):
    """Alert triage says more than the incident's: a form error names its field, a change that leaves the
    alert as it was says so instead of claiming success, and a resolution may go on to the next alert."""

    def apply(
        self, request: HttpRequest, obj: Any, form: TriageForm, change: Change, done: str, **options: bool
    ) -> HttpResponse:
        """Validate ``form``, apply ``change`` (a service call) to the alert, say how it went, redirect (to
        the next alert in the queue when ``then_next`` and the person ticked it, and it worked). When the
        alert reads the same afterwards, the message says nothing changed instead of claiming success."""
        alert = obj
        if not form.is_valid():
            errors = "; ".join(
                f"{form[name].label if name in form.fields else 'Form'}: {' '.join(map(str, errs))}"
                for name, errs in form.errors.items()
            )
            messages.error(request, f"Nothing changed. {errors}")
            return self.back(alert)
        before = _triage_state(alert)
        try:
            changed = change(alert)
        except DomainError as exc:
            messages.error(request, str(exc))
            return self.back(alert)
        if isinstance(changed, Alert) and _triage_state(changed) == before:
            messages.info(request, f"Nothing changed: the alert is already {_describe_state(changed)}.")
            return self.back(alert)
        then_next = options.get("then_next", False) and bool(request.POST.get("next_alert"))
        following = next_in_queue(alert) if then_next else None
        if following is not None:
            messages.success(
                request, f"Alert #{alert.pk} resolved. This is the next open alert in the queue."
            )
            return self.back(following)
        messages.success(request, done)
        return self.back(alert)


def _triage_state(alert: Alert) -> tuple:
    return (alert.status, alert.assigned_to_id, alert.classification)


def _describe_state(alert: Alert) -> str:
    owner = f"assigned to {alert.assigned_to.get_username()}" if alert.assigned_to else "unassigned"
    return f"{alert.get_status_display().lower()} and {owner}"


triage = AlertTriage(Alert, permission=TRIAGE, noun="alert")
alert_status = triage.view("status", AlertStatusForm, services.set_alert_status, "Status changed.")
alert_assign = triage.view("assign", AlertAssignForm, services.assign_alert, "Assignment changed.")
alert_comment = triage.view("comment", AlertCommentForm, services.comment_on_alert, "Comment added.")
alert_resolve = triage.view(
    "resolve", AlertResolveForm, services.resolve_alert, "Alert resolved.", then_next=True
)


BULK_DONE = {
    "assign_me": "assigned to you",
    "unassign": "unassigned",
    "in_progress": "set to In progress",
    "new": "set to New",
    "resolve": "resolved",
}


def _bulk_change(operation: str, form: AlertBulkForm, actor: User) -> Callable[[Alert], Alert]:
    """The service call one bulk operation makes for each alert (each writes its own audit row)."""
    if operation == "assign_me":
        return lambda alert: services.assign_alert(alert, actor=actor, assignee=actor)
    if operation == "unassign":
        return lambda alert: services.assign_alert(alert, actor=actor, assignee=None)
    if operation in ("new", "in_progress"):
        return lambda alert: services.set_alert_status(alert, actor=actor, status=operation)
    return lambda alert: services.resolve_alert(
        alert,
        actor=actor,
        classification=form.cleaned_data["classification"],
        comment=form.cleaned_data["comment"],
    )


def _bulk(request: HttpRequest, form: AlertBulkForm) -> None:
    """Assign, set the status of, or resolve the ticked alerts, one service call per alert; the message
    counts what changed, what was already so, and what could not be changed (and why)."""
    operation = form.cleaned_data["operation"]
    change = _bulk_change(operation, form, acting_user(request))
    alerts = list(Alert.objects.select_related("assigned_to").filter(pk__in=form.cleaned_data["ids"]))
    changed, unchanged, refused = 0, 0, []
    for alert in alerts:
        before = _triage_state(alert)
        try:
            after = change(alert)
        except DomainError as exc:
            refused.append(f"#{alert.pk}: {exc}")
            continue
        if _triage_state(after) == before:
            unchanged += 1
        else:
            changed += 1
    missing = len(form.cleaned_data["ids"]) - len(alerts)
    parts = [f"{changed} alert{'s' if changed != 1 else ''} {BULK_DONE[operation]}."]
    if unchanged:
        parts.append(
            f"{unchanged} already {'were' if unchanged != 1 else 'was'} so: nothing changed for them."
        )
    if missing:
        parts.append(f"{missing} no longer exist{'s' if missing == 1 else ''}.")
    if refused:
        parts.append("Not changed: " + "; ".join(refused))
    level = messages.success if changed and not refused else messages.error if refused else messages.info
    level(request, " ".join(parts))


alert_bulk = triage.bulk(AlertBulkForm, "console:alert_list", _bulk, separator=" ")
