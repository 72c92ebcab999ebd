"""``/api/v1/webhooks/``: webhook endpoints and their delivery log; every role reads them (without secrets),
administrators write. Writes go through :mod:`notifications.services`; the secret is in the creation answer
(sent ``no-store``) and nowhere else."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils.cache import add_never_cache_headers
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.actors import acting_user
from core.api.inputs import bad_request
from core.exceptions import DomainError
from core.models import Tenant
from core.permissions import RolePermission, TenantScopedMixin

from .. import services
from ..models import WebhookDelivery, WebhookEndpoint
from . import serializers as s

MANAGE = "notifications.change_webhookendpoint"


class WebhookEndpointViewSet(
    TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Endpoints (secret prefix only); create (its answer holds the secret, once), disable, test, log. A token
    bound to a tenant sees that tenant's endpoints only (not the deployment-wide ones)."""

    permission_classes = [RolePermission]
    read_permission = "notifications.view_webhookendpoint"
    action_permissions = {"create": "notifications.add_webhookendpoint", "disable": MANAGE, "test": MANAGE}
    serializer_class = s.WebhookEndpointSerializer

    def base_queryset(self) -> QuerySet[WebhookEndpoint]:
        return WebhookEndpoint.objects.select_related("tenant", "created_by")

    @extend_schema(
        request=s.WebhookEndpointCreateSerializer, responses={201: s.WebhookEndpointCreatedSerializer}
    )
    def create(self, request: Request) -> Response:
        data = s.WebhookEndpointCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            endpoint, secret = services.create_endpoint(
                data.validated_data.get("tenant") or Tenant.objects.default(),
                actor=acting_user(request),
                name=data.validated_data["name"],
                url=data.validated_data["url"],
                event_kinds=data.validated_data.get("event_kinds", []),
            )
        except DomainError as exc:
            return bad_request(str(exc))
        endpoint.secret = secret
        response = Response(s.WebhookEndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)
        add_never_cache_headers(response)
        return response

    @extend_schema(request=None, responses=s.WebhookEndpointSerializer)
    @action(detail=True, methods=["post"])
    def disable(self, request: Request, pk: str | None = None) -> Response:
        endpoint = services.disable_endpoint(self.get_object(), actor=acting_user(request))
        return Response(s.WebhookEndpointSerializer(endpoint).data)

    @extend_schema(request=None, responses={202: s.WebhookDeliverySerializer})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        try:
            delivery = services.send_test_delivery(self.get_object(), actor=acting_user(request))
        except DomainError as exc:
            return bad_request(str(exc))
        return Response(s.WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=s.WebhookDeliverySerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        queryset = WebhookDelivery.objects.filter(endpoint=self.get_object()).defer("body")
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(s.WebhookDeliverySerializer(page, many=True).data)
