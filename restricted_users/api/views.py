"""REST API of restrictions: list / read (readers and read tokens), restrict by hand and release
(administrators). Thin: validate, call the service, render."""

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.actors import acting_user
from core.api.inputs import bad_request
from core.exceptions import DomainError
from core.permissions import RolePermission, TenantScopedMixin

from .. import services
from ..exceptions import RestrictionPermissionError
from ..filtersets import RestrictionFilterSet
from ..models import Restriction
from .serializers import ReleaseSerializer, RestrictByHandSerializer, RestrictionSerializer


class RestrictionViewSet(
    TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = RestrictionSerializer
    permission_classes = [RolePermission]
    read_permission = "restricted_users.view_restriction"
    action_permissions = {
        "create": "restricted_users.add_restriction",
        "release": "restricted_users.release_restriction",
    }
    filterset_class = RestrictionFilterSet

    def base_queryset(self) -> QuerySet:
        restrictions = Restriction.objects.with_related()
        return restrictions

    @extend_schema(
        request=RestrictByHandSerializer, responses={201: RestrictionSerializer, 200: RestrictionSerializer}
    )
    def create(self, request: Request) -> Response:
        """Restrict a user by hand (200 with the existing restriction when already restricted)."""
        body = RestrictByHandSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            restriction, created = services.restrict_by_hand(
                body.validated_data["mailbox"],
                actor=acting_user(request),
                reason_text=body.validated_data["reason"],
                until_released=body.validated_data["until_released"],
            )
        except RestrictionPermissionError as exc:
            raise PermissionDenied(str(exc)) from exc
        except DomainError as exc:
            return bad_request(str(exc))
        return Response(
            RestrictionSerializer(restriction).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(request=ReleaseSerializer, responses=RestrictionSerializer)
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk: str | None = None) -> Response:
        """Release a restricted user at once: reason, checklist attestations, and past the cap an override."""
        restriction = self.get_object()
        body = ReleaseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            restriction = services.release_user(
                restriction, actor=acting_user(request), **body.validated_data
            )
        except RestrictionPermissionError as exc:
            raise PermissionDenied(str(exc)) from exc
        except DomainError as exc:
            return bad_request(str(exc))
        return Response(RestrictionSerializer(restriction).data)
