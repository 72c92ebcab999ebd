"""``GET /api/v1/feed/``: the change feed for a SIEM, paged by cursor (DESIGN section 3)."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import renderers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..permissions import RolePermission, tenant_of
from ..services import read_feed
from . import serializers as s
from .renderers import CEFRenderer


class ChangeFeedView(APIView):
    """Every change after ``cursor``, oldest first: ``{"entries": [...], "next_cursor": "..."}``.

    Pass ``next_cursor`` back as ``cursor`` to continue; an empty page returns the cursor unchanged. The
    cursor is the entry's commit-ordered feed position (:func:`core.services.sequence_changes`), so pages
    neither lose nor repeat entries, even while writers commit concurrently and out of id order. People need
    ``core.view_changefeedentry`` (every role); a read token sees its own tenant's entries only.
    ``?format=cef`` answers CEF lines instead (next cursor in ``X-Next-Cursor``).
    """

    permission_classes = [RolePermission]
    read_permission = "core.view_changefeedentry"
    renderer_classes = [renderers.JSONRenderer, renderers.BrowsableAPIRenderer, CEFRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter("cursor", int, description="the next_cursor of the previous page (0: start)"),
            OpenApiParameter("limit", int, description="entries per page, 1-1000 (default 100)"),
        ],
        responses={
            (200, "application/json"): s.FeedPageSerializer,
            (200, "text/plain"): OpenApiResponse(
                OpenApiTypes.STR,
                description="?format=cef: one CEF line per entry; next cursor in X-Next-Cursor",
            ),
        },
    )
    def get(self, request: Request) -> HttpResponse:
        query = s.FeedQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        entries, next_cursor = read_feed(
            cursor=query.validated_data["cursor"],
            limit=query.validated_data["limit"],
            tenant=tenant_of(request),
        )
        page = {
            "entries": s.ChangeFeedEntrySerializer(entries, many=True).data,
            "next_cursor": str(next_cursor),
        }
        if request.accepted_renderer.format == CEFRenderer.format:
            # Rendered here: DRF drops the Content-Type of an empty body, and an empty page is a valid answer.
            response = HttpResponse(content_type="text/plain; charset=utf-8")
            response.content = CEFRenderer().render(page, renderer_context={"response": response})
            return response
        return Response(page)
