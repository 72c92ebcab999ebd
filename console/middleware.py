"""A friendly page instead of an empty 405 when a browser GETs a URL that only takes POST: a reloaded or
bookmarked form target (``/restricted-users/7/release/``, ``/action-center/3/undo/``) says what happened and
links to the page the form lives on."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import render
from django.urls import Resolver404, resolve, reverse


def page_above(path: str) -> str:
    """The nearest URL above ``path`` that the console serves (``/restricted-users/7/release/`` →
    ``/restricted-users/7/``; ``/action-center/3/undo/`` → ``/action-center/``), else the dashboard."""
    parts = [part for part in path.split("/") if part]
    while parts:
        parts.pop()
        candidate = "/" + "/".join(parts) + ("/" if parts else "")
        try:
            resolve(candidate)
        except Resolver404:
            continue
        return candidate
    return reverse("console:dashboard")


class FriendlyMethodNotAllowedMiddleware:
    """Replace the bare 405 of a GET / HEAD on a POST-only view by a page that explains it (still 405)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            isinstance(response, HttpResponseNotAllowed)
            and request.method in ("GET", "HEAD")
            and not getattr(request, "htmx", False)
            and not request.path.startswith(("/api/", "/hooks/"))
        ):
            friendly = render(
                request,
                "405.html",
                {"back_url": page_above(request.path), "allowed": response.get("Allow", "")},
                status=405,
            )
            friendly["Allow"] = response.get("Allow", "")
            return friendly
        return response
