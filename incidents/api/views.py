"""``/api/v1/incidents/``: reads for every role (and read tokens, limited to their tenant); assign, status
and resolve for operators (the same permission as the console's triage). Every write goes through
:mod:`incidents.services`; domain errors answer 400 ``{"detail": …}``. ``?alert=``, ``?restriction=``,
``?investigation=`` and ``?action=`` find the incident of one object."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.inputs import ServiceActionMixin
from core.permissions import RolePermission, TenantScopedMixin

from .. import services
from ..filtersets import IncidentFilterSet, with_counts
from ..models import Incident
from . import serializers as s

TRIAGE = services.TRIAGE_PERMISSION


class IncidentViewSet(TenantScopedMixin, ServiceActionMixin, viewsets.ReadOnlyModelViewSet):
    """Incidents, latest activity first, filtered by :class:`IncidentFilterSet`."""

    permission_classes = [RolePermission]
    read_permission = "incidents.view_incident"
    action_permissions = {"status": TRIAGE, "assign": TRIAGE, "resolve": TRIAGE}
    filterset_class = IncidentFilterSet
    serializer_class = s.IncidentSerializer
    detail_serializer_class = s.IncidentDetailSerializer

    def base_queryset(self) -> QuerySet[Incident]:
        queryset = with_counts(Incident.objects.with_related()).prefetch_related(
            "alert_links", "restriction_links", "investigation_links"
        )
        return queryset

    @extend_schema(request=s.IncidentStatusInputSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"])
    def status(self, request: Request, pk: str | None = None) -> Response:
        """Set the status to ``active`` or ``in_progress`` (a resolved incident is reopened)."""
        return self.run_service(request, services.set_incident_status, s.IncidentStatusInputSerializer)

    @extend_schema(request=s.IncidentAssignInputSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str | None = None) -> Response:
        """Assign to a person who may triage (``"me"`` for the caller), or unassign with null."""
        return self.run_assign(
            request, s.IncidentAssignInputSerializer, services.assign_incident, "incidents"
        )

    @extend_schema(request=s.IncidentResolveInputSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str | None = None) -> Response:
        """Resolve with a classification and an optional comment; the incident's open alerts resolve too."""
        return self.run_service(request, services.resolve_incident, s.IncidentResolveInputSerializer)
