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
from rest_framework.serializers import BaseSerializer

from core.actors import acting_user
from core.api.inputs import UnknownAssignee, assignee_named, bad_request, validated_input
from core.exceptions import DomainError
from core.permissions import RolePermission, TenantScopedMixin

from .. import services
from ..filtersets import IncidentFilterSet, with_counts
from ..models import Incident
from . import serializers as s

TRIAGE = services.TRIAGE_PERMISSION


class IncidentViewSet(TenantScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Incidents, latest activity first, filtered by :class:`IncidentFilterSet`."""

    permission_classes = [RolePermission]
    read_permission = "incidents.view_incident"
    action_permissions = {"status": TRIAGE, "assign": TRIAGE, "resolve": TRIAGE}
    filterset_class = IncidentFilterSet

    def base_queryset(self) -> QuerySet[Incident]:
        queryset = with_counts(Incident.objects.with_related()).prefetch_related(
            "alert_links", "restriction_links", "investigation_links"
        )
        return queryset

    def get_serializer_class(self) -> type[BaseSerializer]:
        return s.IncidentSerializer if self.action == "list" else s.IncidentDetailSerializer

    def _done(self, incident: Incident) -> Response:
        return Response(s.IncidentDetailSerializer(self.get_queryset().get(pk=incident.pk)).data)

    @extend_schema(request=s.IncidentStatusInputSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"])
    def status(self, request: Request, pk: str | None = None) -> Response:
        """Set the status to ``active`` or ``in_progress`` (a resolved incident is reopened)."""
        data = validated_input(s.IncidentStatusInputSerializer, request)
        try:
            incident = services.set_incident_status(
                self.get_object(), actor=acting_user(request), status=data["status"]
            )
        except DomainError as exc:
            return bad_request(str(exc))
        return self._done(incident)

    @extend_schema(request=s.IncidentAssignInputSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str | None = None) -> Response:
        """Assign to a person who may triage (``"me"`` for the caller), or unassign with null."""
        name = validated_input(s.IncidentAssignInputSerializer, request)["assignee"]
        try:
            assignee = assignee_named(request, name)
        except UnknownAssignee:
            return bad_request(f"{name!r} is not a person who may triage incidents.")
        try:
            incident = services.assign_incident(
                self.get_object(), actor=acting_user(request), assignee=assignee
            )
        except DomainError as exc:
            return bad_request(str(exc))
        return self._done(incident)

    @extend_schema(request=s.IncidentResolveInputSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str | None = None) -> Response:
        """Resolve with a classification and an optional comment; the incident's open alerts resolve too."""
        data = validated_input(s.IncidentResolveInputSerializer, request)
        try:
            incident = services.resolve_incident(
                self.get_object(),
                actor=acting_user(request),
                classification=data["classification"],
                comment=data["comment"],
            )
        except DomainError as exc:
            return bad_request(str(exc))
        return self._done(incident)
