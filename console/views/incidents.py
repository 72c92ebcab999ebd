"""The incidents queue (filters, sort, CSV, bulk assign / resolve) and an incident's page (header, triage, the
timeline and everything the incident groups, linked). Every change goes through :mod:`incidents.services`;
readers see the same pages without the controls, and the server refuses their POSTs (403)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from core.actors import acting_user
from core.exceptions import DomainError
from core.models import Tenant
from incidents import services
from incidents.filtersets import IncidentFilterSet
from incidents.models import Incident

from ..forms_incidents import IncidentAssignForm, IncidentBulkForm, IncidentResolveForm, IncidentStatusForm
from ..incident_timeline import build_timeline, related_objects
from ..lists import FilteredListView, single_valued
from .triage import Triage

VIEW = "incidents.view_incident"
TRIAGE = services.TRIAGE_PERMISSION


def _ids(links: Iterable[int]) -> str:
    return " ".join(str(pk) for pk in sorted(links))


class IncidentListView(FilteredListView):
    """Incidents, open ones by default, latest activity first; filters in the URL (the same as the API),
    sortable, paged, CSV; operators select rows to assign or resolve them together."""

    model = Incident
    permission_required = VIEW
    template_name = "console/incidents.html"
    filterset_class = IncidentFilterSet
    hide_single_tenant = True
    csv_filename = "incidents.csv"
    csv_columns = (
        ("id", lambda i: i.pk),
        ("tenant", lambda i: i.tenant.slug),
        ("title", lambda i: i.title),
        ("severity", lambda i: i.severity),
        ("status", lambda i: i.status),
        ("classification", lambda i: i.classification),
        ("user", lambda i: i.mailbox.address),
        ("assigned_to", lambda i: i.assigned_to.get_username() if i.assigned_to else ""),
        ("first_activity", lambda i: i.first_activity_at.isoformat()),
        ("last_activity", lambda i: i.last_activity_at.isoformat()),
        ("created", lambda i: i.created_at.isoformat()),
        ("resolved", lambda i: i.resolved_at.isoformat() if i.resolved_at else ""),
        ("alerts", lambda i: _ids(link.alert_id for link in i.alert_links.all())),
        ("restrictions", lambda i: _ids(link.restriction_id for link in i.restriction_links.all())),
        ("investigations", lambda i: _ids(link.investigation_id for link in i.investigation_links.all())),
    )

    def base_queryset(self) -> QuerySet:
        return Incident.objects.with_related()

    def get_queryset(self) -> QuerySet:
        data = single_valued(self.request.GET)
        data.setdefault("status", "open")  # an empty ``status=`` means every status
        self.filterset = self.filterset_class(data, queryset=self.base_queryset(), request=self.request)
        for name in ("mailbox", "alert", "restriction", "investigation", "action"):
            field = self.filterset.form.fields[name]
            field.widget, field.label = forms.HiddenInput(), ""
        return self.filterset.qs

    def csv_response(self, queryset: QuerySet) -> StreamingHttpResponse:
        return super().csv_response(
            queryset.prefetch_related("alert_links", "restriction_links", "investigation_links")
        )

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(
            can_triage=self.request.user.has_perm(TRIAGE),
            resolve_form=IncidentResolveForm(),
            next=self.request.get_full_path(),
        )
        return context


@require_safe
@permission_required(VIEW, raise_exception=True)
def incident_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The incident: header, triage (operators), its timeline, and its alerts, restrictions, investigations
    and actions, each linked."""
    incident = get_object_or_404(Incident.objects.with_related(), pk=pk)
    related = related_objects(incident)
    timeline, cut = build_timeline(incident, related)
    can_triage = request.user.has_perm(TRIAGE)
    open_investigation = next(
        (i for i in reversed(related.investigations) if i.status in i.OPEN_STATUSES), None
    )
    context = {
        "incident": incident,
        "related": related,
        "timeline": timeline,
        "timeline_cut": cut,
        "open_investigation": open_investigation,
        "latest_investigation": related.investigations[-1] if related.investigations else None,
        "can_triage": can_triage,
        "single_tenant": Tenant.objects.is_single(),
        "status_form": IncidentStatusForm(initial={"status": incident.status}) if can_triage else None,
        "resolve_form": IncidentResolveForm() if can_triage else None,
    }
    return render(request, "console/incident_detail.html", context)


triage = Triage(Incident, permission=TRIAGE, noun="incident")
incident_status = triage.view("status", IncidentStatusForm, services.set_incident_status, "Status changed.")
incident_assign = triage.view("assign", IncidentAssignForm, services.assign_incident, "Assignment changed.")
incident_resolve = triage.view(
    "resolve", IncidentResolveForm, services.resolve_incident, "Incident resolved, with its open alerts."
)


def _bulk(request: HttpRequest, form: IncidentBulkForm) -> None:
    """Assign to me, unassign or resolve the selected incidents: all or nothing."""
    chosen = [Incident(pk=pk) for pk in form.cleaned_data["ids"]]
    operation = form.cleaned_data["operation"]
    try:
        if operation == "resolve":
            count = services.bulk_resolve_incidents(
                chosen,
                actor=acting_user(request),
                classification=form.cleaned_data["classification"],
                comment=form.cleaned_data["comment"],
            )
            done = f"{count} incident{'s' if count != 1 else ''} resolved, with their open alerts."
        else:
            assignee = acting_user(request) if operation == "assign" else None
            count = services.bulk_assign_incidents(chosen, actor=acting_user(request), assignee=assignee)
            verb = "assigned to you" if assignee else "unassigned"
            done = f"{count} incident{'s' if count != 1 else ''} {verb}."
    except DomainError as exc:
        messages.error(request, f"Nothing changed. {exc}")
    else:
        messages.success(request, done)


incident_bulk = triage.bulk(IncidentBulkForm, "console:incidents", _bulk)
