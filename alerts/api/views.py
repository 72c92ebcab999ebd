"""``/api/v1/alerts/`` and ``/api/v1/policies/``: reads for every role (and read tokens, limited to their
tenant), triage for operators, policy changes for administrators. Every write goes through
:mod:`alerts.services`."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.actors import acting_user
from core.api.inputs import ServiceActionMixin, validated_input
from core.filters import tenant_named
from core.permissions import RolePermission, TenantScopedMixin

from .. import policy_services, services
from ..exceptions import PolicyValidationError
from ..filtersets import AlertFilterSet
from ..models import Alert, AlertComment, AlertPolicy, PolicyOverride
from . import serializers as s

TRIAGE = services.TRIAGE_PERMISSION
CHANGE_POLICY = "alerts.change_alertpolicy"


class AlertViewSet(TenantScopedMixin, ServiceActionMixin, viewsets.ReadOnlyModelViewSet):
    """Alerts, newest activity first, filtered by :class:`AlertFilterSet`; triage needs the operator role."""

    permission_classes = [RolePermission]
    read_permission = "alerts.view_alert"
    action_permissions = {"status": TRIAGE, "assign": TRIAGE, "comment": TRIAGE, "resolve": TRIAGE}
    filterset_class = AlertFilterSet
    serializer_class = s.AlertSerializer
    detail_serializer_class = s.AlertDetailSerializer

    def base_queryset(self) -> QuerySet[Alert]:
        queryset = Alert.objects.with_related().select_related("resolved_by")
        if self.action != "list":
            queryset = queryset.prefetch_related(
                Prefetch("comments", queryset=AlertComment.objects.select_related("author"))
            )
        return queryset

    @extend_schema(request=s.AlertStatusInputSerializer, responses=s.AlertDetailSerializer)
    @action(detail=True, methods=["post"])
    def status(self, request: Request, pk: str | None = None) -> Response:
        """Set the status to ``new`` or ``in_progress`` (resolving has its own action)."""
        return self.run_service(request, services.set_alert_status, s.AlertStatusInputSerializer)

    @extend_schema(request=s.AlertAssignInputSerializer, responses=s.AlertDetailSerializer)
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str | None = None) -> Response:
        """Assign to a person who may triage (``"me"`` for the caller), or unassign with null."""
        return self.run_assign(request, s.AlertAssignInputSerializer, services.assign_alert, "alerts")

    @extend_schema(request=s.AlertCommentInputSerializer, responses=s.AlertDetailSerializer)
    @action(detail=True, methods=["post"])
    def comment(self, request: Request, pk: str | None = None) -> Response:
        return self.run_service(request, services.comment_on_alert, s.AlertCommentInputSerializer)

    @extend_schema(request=s.AlertResolveInputSerializer, responses=s.AlertDetailSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str | None = None) -> Response:
        """Resolve with a classification, an optional comment and an optional suppression (minutes)."""
        data = validated_input(s.AlertResolveInputSerializer, request)
        minutes = data.pop("suppress_minutes")
        suppress_for = timedelta(minutes=minutes) if minutes is not None else None
        return self.run_service(request, services.resolve_alert, suppress_for=suppress_for, **data)


class AlertPolicyViewSet(
    TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """The alert policies of each tenant (seeded with the tenant; a read writes nothing), edited with PATCH;
    per-mailbox overrides.

    Bad values answer 400 ``{"errors": {field: message}}`` with the fields named as the service names them
    (``thresholds.<key>`` for a threshold).
    """

    permission_classes = [RolePermission]
    read_permission = "alerts.view_alertpolicy"
    action_permissions = {
        "partial_update": CHANGE_POLICY,
        "overrides": CHANGE_POLICY,
        "remove_override": CHANGE_POLICY,
    }
    serializer_class = s.AlertPolicySerializer
    http_method_names = ["get", "patch", "post", "delete", "head", "options"]

    def base_queryset(self) -> QuerySet[AlertPolicy]:
        queryset = AlertPolicy.objects.select_related("tenant")
        if key := self.request.query_params.get("tenant"):
            tenant = tenant_named(key)
            queryset = queryset.filter(tenant=tenant) if tenant is not None else queryset.none()
        return queryset.prefetch_related("overrides").order_by("tenant__name", "name")

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        """Change some settings; every value is validated and the change audited by the service."""
        if not isinstance(request.data, dict):
            return Response({"errors": {"non_field_errors": "send a JSON object"}}, status=400)
        try:
            policy_services.update_policy(self.get_object(), actor=acting_user(request), **dict(request.data))
        except PolicyValidationError as exc:
            return Response({"errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
        return Response(self.get_serializer(self.get_queryset().get(pk=pk)).data)

    @extend_schema(methods=["GET"], responses=s.PolicyOverrideSerializer(many=True))
    @extend_schema(
        methods=["POST"], request=s.PolicyOverrideInputSerializer, responses={201: s.PolicyOverrideSerializer}
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None)  # a policy has few overrides
    def overrides(self, request: Request, pk: str | None = None) -> Response:
        """List the policy's per-mailbox overrides, or set one (replacing the mailbox's previous override)."""
        policy = self.get_object()
        if request.method == "GET":
            return Response(s.PolicyOverrideSerializer(policy.overrides.all(), many=True).data)
        serializer = s.PolicyOverrideInputSerializer(data=request.data)
        if not serializer.is_valid():
            errors = {
                field: " ".join(str(m) for m in messages) for field, messages in serializer.errors.items()
            }
            return Response({"errors": errors}, status=status.HTTP_400_BAD_REQUEST)
        try:
            override = policy_services.set_policy_override(
                policy, actor=acting_user(request), **serializer.validated_data
            )
        except PolicyValidationError as exc:
            return Response({"errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
        return Response(s.PolicyOverrideSerializer(override).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"overrides/(?P<override_id>\d+)")
    def remove_override(
        self, request: Request, pk: str | None = None, override_id: str | None = None
    ) -> Response:
        override = get_object_or_404(PolicyOverride, pk=override_id, policy=self.get_object())
        policy_services.remove_policy_override(override, actor=acting_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
