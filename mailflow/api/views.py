"""REST API of mail flow: ``POST /api/v1/events/`` (ingest contract v1) and read-only message events."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.models import Tenant
from core.permissions import CanIngest, RolePermission, TenantScopedMixin, tenant_of

from ..decoding import DecodeError, decode_array, decode_json
from ..filtersets import MessageEventFilterSet
from ..ingest import STRICT, ingest_events
from ..models import MessageEvent
from .serializers import (
    IngestAcceptedSerializer,
    IngestLimitSerializer,
    IngestRefusedSerializer,
    IngestUndecodableSerializer,
    MessageEventSerializer,
)

NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")
JSON_TYPES = ("application/json", "")
# An answer lists at most this many errors (``error_count`` has them all).
MAX_REPORTED_ERRORS = 1000


class RequestRefused(Exception):
    """The request cannot be ingested as sent; carries the HTTP answer."""

    def __init__(self, status_code: int, data: dict[str, Any]) -> None:
        super().__init__(data.get("detail", ""))
        self.status_code = status_code
        self.data = data


def _too_large(limit_name: str, limit: int, unit: str) -> RequestRefused:
    return RequestRefused(
        status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        {
            "detail": f"The request is above the ingest limit {limit_name} = {limit} {unit}; "
            "split it into batches.",
            "limit": limit_name,
            "max": limit,
        },
    )


def target_tenant(request: Request) -> Tenant:
    """A token writes to the tenant it is bound to (naming another is refused); a person names one with
    ``?tenant=<slug>`` or gets the default tenant."""
    slug = request.query_params.get("tenant", "").strip()
    bound = tenant_of(request)
    if bound is not None:
        if slug and slug != bound.slug:
            raise PermissionDenied(f"This token may write to tenant {bound.slug!r} only.")
        return bound
    if not slug:
        return Tenant.objects.default()
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise RequestRefused(status.HTTP_400_BAD_REQUEST, {"detail": f"Unknown tenant {slug!r}."})
    return tenant


def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refused past ``max_bytes`` (read from the stream: Django's upload limit is not used)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > max_bytes:
        raise _too_large("INGEST_MAX_BYTES", max_bytes, "bytes")
    body = request._request.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise _too_large("INGEST_MAX_BYTES", max_bytes, "bytes")
    return body


def parse_events(body: bytes, content_type: str) -> tuple[list[Any], list[int] | None]:
    """The events of a JSON array or NDJSON body, and for NDJSON the line number of each event. Every
    decoding failure (not UTF-8, not JSON, nested too deep, an integer too long, NaN) is a 400 naming the
    event (``index``) or the line."""
    if content_type in NDJSON_TYPES:
        return _parse_ndjson(body)
    if content_type not in JSON_TYPES:
        raise RequestRefused(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            {
                "detail": "Send application/json (an array of events) or application/x-ndjson, "
                f"not {content_type!r}."
            },
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        raise RequestRefused(
            status.HTTP_400_BAD_REQUEST,
            {"detail": f"The body is not UTF-8 (byte {exc.start}, line {line}).", "line": line},
        ) from None
    try:
        events = decode_array(text)
    except DecodeError as exc:
        detail = exc.message if exc.index is not None else f"Invalid JSON: {exc.message}."
        refused: dict[str, Any] = {"detail": detail}
        if exc.index is not None:
            refused["index"] = exc.index
        if exc.line is not None:
            refused["line"] = exc.line
        raise RequestRefused(status.HTTP_400_BAD_REQUEST, refused) from None
    if not isinstance(events, list):
        raise RequestRefused(
            status.HTTP_400_BAD_REQUEST,
            {
                "detail": "Expected a JSON array of events "
                "(or NDJSON with Content-Type: application/x-ndjson)."
            },
        )
    return events, None


def _parse_ndjson(body: bytes) -> tuple[list[Any], list[int]]:
    events, lines = [], []
    for number, raw in enumerate(body.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestRefused(
                status.HTTP_400_BAD_REQUEST,
                {"detail": f"Line {number} is not UTF-8 (byte {exc.start} of the line).", "line": number},
            ) from None
        if not line.strip():
            continue
        try:
            events.append(decode_json(line))
        except DecodeError as exc:
            raise RequestRefused(
                status.HTTP_400_BAD_REQUEST,
                {"detail": f"Line {number} is not valid JSON: {exc.message}.", "line": number},
            ) from None
        lines.append(number)
    return events, lines


class EventIngestView(APIView):
    """Ingest a batch of events (contract v1), atomically: any invalid event and nothing is stored."""

    permission_classes = [CanIngest]

    @extend_schema(
        operation_id="events_ingest",
        parameters=[
            OpenApiParameter("tenant", str, description="Tenant slug (people only; a token's is fixed)")
        ],
        request={
            "application/json": {"type": "array", "items": {"type": "object"}},
            "application/x-ndjson": {"type": "string", "description": "One JSON event per line"},
        },
        responses={
            200: IngestAcceptedSerializer,
            201: IngestAcceptedSerializer,
            400: PolymorphicProxySerializer(
                component_name="IngestBadRequest",
                serializers=[IngestRefusedSerializer, IngestUndecodableSerializer],
                resource_type_field_name=None,
            ),
            413: IngestLimitSerializer,
            415: OpenApiResponse(description="Neither JSON nor NDJSON"),
        },
    )
    def post(self, request: Request) -> Response:
        try:
            tenant = target_tenant(request)
            body = read_body(request, settings.INGEST_MAX_BYTES)
            content_type = request.content_type.split(";")[0].strip().lower()
            events, lines = parse_events(body, content_type)
            if len(events) > settings.INGEST_MAX_EVENTS:
                raise _too_large("INGEST_MAX_EVENTS", settings.INGEST_MAX_EVENTS, "events")
        except RequestRefused as refused:
            return Response(refused.data, status=refused.status_code)
        result = ingest_events(tenant, events, mode=STRICT, source="api")
        warnings = _with_lines(result.warnings, lines)
        if result.errors:
            errors = _with_lines(result.errors[:MAX_REPORTED_ERRORS], lines)
            return Response(
                {"errors": errors, "warnings": warnings, "error_count": len(result.errors)},
                status=status.HTTP_400_BAD_REQUEST,
            )
        summary = {**result.summary(), "warnings": warnings}
        return Response(summary, status=status.HTTP_201_CREATED if result.accepted else status.HTTP_200_OK)


def _with_lines(items: list[dict[str, Any]], lines: list[int] | None) -> list[dict[str, Any]]:
    """For NDJSON, each error / warning also names its line."""
    if lines is None:
        return items
    return [{**item, "line": lines[item["index"]]} for item in items]


class MessageEventViewSet(TenantScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Stored message events; a token sees its own tenant's only, a person every tenant (``?tenant=``)."""

    serializer_class = MessageEventSerializer
    permission_classes = [RolePermission]
    read_permission = "mailflow.view_messageevent"
    filterset_class = MessageEventFilterSet

    def base_queryset(self) -> QuerySet[MessageEvent]:
        messages = MessageEvent.objects.with_related().order_by("-time", "-id")
        return messages
