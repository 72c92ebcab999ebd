"""``/api/v1/m365/connections/``: Microsoft 365 connections, their tests, pulls and status. Readers (and read
tokens, for their own tenant) read; administrators write, through :mod:`m365.services` and the ``m365.pull``
task. The credential is write-only: no answer carries the secret or its ciphertext."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from core.actors import acting_user
from core.api.inputs import bad_request
from core.permissions import RolePermission, TenantScopedMixin

from .. import services
from ..exceptions import M365Error
from ..models import M365Connection, PullCursor, PullRun, Source
from . import serializers as s
from .filtersets import PullRunFilterSet

ADD = "m365.add_m365connection"
CHANGE = "m365.change_m365connection"
DELETE = "m365.delete_m365connection"
RECENT_RUNS = 50


class M365ConnectionViewSet(
    TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Connections (ids, credential kind and date, last test); connect, PATCH, disconnect, test, pull."""

    permission_classes = [RolePermission]
    read_permission = "m365.view_m365connection"
    action_permissions = {
        "create": ADD,
        "partial_update": CHANGE,
        "destroy": DELETE,
        "test": CHANGE,
        "pull": CHANGE,
    }
    # PUT is not offered: a connection changes only through PATCH's enabled / credential.
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    serializer_class = s.M365ConnectionSerializer

    def base_queryset(self) -> QuerySet[M365Connection]:
        connections = M365Connection.objects.select_related("tenant", "created_by").defer(
            "credential_ciphertext"
        )
        return connections

    @extend_schema(request=s.M365ConnectionCreateSerializer, responses={201: s.M365ConnectionSerializer})
    def create(self, request: Request) -> Response:
        """Connect a tenant (a new organisation named ``name``, or the existing ``tenant``). Test it next."""
        data = s.M365ConnectionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            connection = services.connect_tenant(
                actor=acting_user(request), name=data.validated_data.pop("name", ""), **data.validated_data
            )
        except M365Error as exc:
            return bad_request(str(exc))
        return Response(s.M365ConnectionSerializer(connection).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.M365ConnectionUpdateSerializer, responses=s.M365ConnectionSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        """Enable / disable, or replace the credential (``credential_type`` and ``secret``)."""
        connection = self.get_object()
        data = s.M365ConnectionUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = data.validated_data
        try:
            with transaction.atomic():
                if "secret" in changes:
                    services.change_credential(
                        connection,
                        actor=acting_user(request),
                        credential_type=changes["credential_type"],
                        secret=changes["secret"],
                    )
                if "enabled" in changes:
                    services.set_enabled(connection, actor=acting_user(request), enabled=changes["enabled"])
        except M365Error as exc:
            return bad_request(str(exc))
        return Response(s.M365ConnectionSerializer(connection).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        """Disconnect: the credential, cursors and runs go; the organisation and its data stay."""
        services.disconnect(self.get_object(), actor=acting_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=s.TestResultSerializer)
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Sign in as the app for each API and name the permissions the connector lacks."""
        result = services.test_connection(self.get_object(), actor=acting_user(request))
        return Response(s.TestResultSerializer(result).data)

    @extend_schema(request=s.PullRequestSerializer, responses={202: s.PullQueuedSerializer})
    @action(detail=True, methods=["post"])
    def pull(self, request: Request, pk: str | None = None) -> Response:
        """Queue a pull of every source (or of ``source``) now, whether it is due or not."""
        connection = self.get_object()
        data = s.PullRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        source = data.validated_data.get("source", "")
        try:
            services.request_pull(connection, actor=acting_user(request), source=source)
        except M365Error as exc:
            return bad_request(str(exc))
        return Response(
            {"connection": connection.pk, "source": source, "queued": True}, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("source", str, enum=Source.values, description="only this source's runs"),
            OpenApiParameter(
                "status", str, enum=PullRun.Status.values, description="only runs in this state"
            ),
        ],
        responses=s.ConnectionStatusSerializer,
    )
    @action(detail=True, methods=["get"], url_path="status")
    def pull_status(self, request: Request, pk: str | None = None) -> Response:
        """Each source's cursor (lag, failures, resume bookmark pending) and the most recent pull runs."""
        connection = self.get_object()
        cursors = {cursor.source: cursor for cursor in connection.cursors.all()}
        runs = PullRunFilterSet(
            request.query_params, queryset=PullRun.objects.filter(connection=connection), request=request
        )
        if not runs.is_valid():
            raise ValidationError(runs.errors)
        return Response(
            s.ConnectionStatusSerializer(
                {
                    "connection": connection.pk,
                    "enabled": connection.enabled,
                    "cursors": [
                        cursors.get(value) or PullCursor(connection=connection, source=value)
                        for value in Source.values
                    ],
                    "runs": runs.qs[:RECENT_RUNS],
                }
            ).data
        )
