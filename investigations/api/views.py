"""``/api/v1/investigations/`` and ``/api/v1/actions/``: reads for every role (and read tokens, limited to
their tenant); stopping an investigation and deciding, undoing and closing manual steps for operators. Every
write goes through :mod:`investigations.actions` / :mod:`investigations.services`; domain errors
answer 400 ``{"detail": …}``."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from alerts.models import Alert
from core.actors import acting_user
from core.api.inputs import ServiceActionMixin, bad_request, validated_input
from core.exceptions import DomainError
from core.permissions import RolePermission, TenantScopedMixin

from .. import actions
from ..filtersets import InvestigationFilterSet, RemediationActionFilterSet, with_counts
from ..models import Investigation, RemediationAction
from . import serializers as s

DECIDE = actions.DECIDE_PERMISSION
UNDO = actions.UNDO_PERMISSION
STOP = "investigations.stop_investigation"


class InvestigationViewSet(TenantScopedMixin, ServiceActionMixin, viewsets.ReadOnlyModelViewSet):
    """Investigations, newest first, filtered by :class:`InvestigationFilterSet`; the detail carries findings,
    clusters, the analyzer log and the actions. ``POST …/stop/`` (operators) rejects its open actions."""

    permission_classes = [RolePermission]
    read_permission = "investigations.view_investigation"
    action_permissions = {"stop": STOP}
    filterset_class = InvestigationFilterSet
    serializer_class = s.InvestigationSerializer
    detail_serializer_class = s.InvestigationDetailSerializer

    def base_queryset(self) -> QuerySet[Investigation]:
        queryset = with_counts(Investigation.objects.with_related())
        if self.action != "list":
            queryset = queryset.select_related("stopped_by").prefetch_related(
                "findings",
                "clusters",
                "runs",
                Prefetch("alerts", queryset=Alert.objects.order_by("-last_activity_at")),
                Prefetch(
                    "actions", queryset=RemediationAction.objects.with_related().select_related("undone_by")
                ),
            )
        return queryset

    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str | None = None) -> Response:
        """Stop an open investigation with a comment: its undecided actions become Rejected."""
        return self.run_service(request, actions.stop_investigation, s.CommentInputSerializer)


class RemediationActionViewSet(TenantScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Remediation actions across investigations (the action center), filtered by
    :class:`RemediationActionFilterSet` (``status=pending`` / ``open`` / ``history`` or one status)."""

    permission_classes = [RolePermission]
    read_permission = "investigations.view_remediationaction"
    action_permissions = {
        "approve": DECIDE,
        "reject": DECIDE,
        "decide": DECIDE,
        "manual": DECIDE,
        "undo": UNDO,
    }
    filterset_class = RemediationActionFilterSet
    serializer_class = s.RemediationActionSerializer

    def base_queryset(self) -> QuerySet[RemediationAction]:
        queryset = (
            RemediationAction.objects.with_related()
            .select_related("undone_by")
            .order_by("-proposed_at", "-id")
        )
        return queryset

    def _done(self, pks: list[int], code: int = status.HTTP_200_OK) -> Response:
        rows = self.get_queryset().filter(pk__in=pks)
        if len(pks) == 1:
            return Response(self.get_serializer(rows.get()).data, status=code)
        return Response(self.get_serializer(rows, many=True).data, status=code)

    def _decide(self, request: Request, approve: bool) -> Response:
        comment = validated_input(s.CommentInputSerializer, request)["comment"]
        target = self.get_object()
        try:
            actions.decide_actions(target, actor=acting_user(request), approve=approve, comment=comment)
        except DomainError as exc:
            return bad_request(str(exc))
        return self._done([target.pk])

    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        """Approve a Pending action (optional comment); a worker executes it."""
        return self._decide(request, approve=True)

    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        """Reject a Pending action; ``comment`` is required."""
        return self._decide(request, approve=False)

    @action(detail=False, methods=["post"])
    def decide(self, request: Request) -> Response:
        """Bulk: ``{"ids": […], "decision": "approve"|"reject", "comment": …}`` for actions of one type,
        all or nothing."""
        data = validated_input(s.BulkDecisionInputSerializer, request)
        chosen = list(self.get_queryset().filter(pk__in=data["ids"]))
        missing = sorted(set(data["ids"]) - {a.pk for a in chosen})
        if missing:
            return bad_request(f"No such action: {', '.join(f'#{pk}' for pk in missing)}.")
        try:
            decided = actions.decide_actions(
                chosen,
                actor=acting_user(request),
                approve=data["decision"] == "approve",
                comment=data["comment"],
            )
        except DomainError as exc:
            return bad_request(str(exc))
        return Response(
            self.get_serializer(self.get_queryset().filter(pk__in=[a.pk for a in decided]), many=True).data
        )

    @action(detail=True, methods=["post"])
    def undo(self, request: Request, pk: str | None = None) -> Response:
        """Undo a completed reversible action (``comment`` required): 202, carried out by a worker."""
        comment = validated_input(s.UndoInputSerializer, request)["comment"]
        target = self.get_object()
        try:
            actions.request_undo(target, actor=acting_user(request), comment=comment)
        except DomainError as exc:
            return bad_request(str(exc))
        return self._done([target.pk], status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["post"], url_path="manual-complete")
    def manual(self, request: Request, pk: str | None = None) -> Response:
        """Close a "Manual step required" action: ``done`` true → Completed, false → Failed (commented)."""
        data = validated_input(s.ManualInputSerializer, request)
        target = self.get_object()
        try:
            actions.mark_manual_action(
                target, actor=acting_user(request), done=data["done"], comment=data["comment"]
            )
        except DomainError as exc:
            return bad_request(str(exc))
        return self._done([target.pk])
