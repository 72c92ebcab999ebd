"""Sign-in lockouts (django-axes) written to the audit trail.

django-axes reports a lockout only through its ``user_locked_out`` signal, so this module listens to it. It
audits the failure that *caused* the lockout (axes sets ``axes_failures_since_start`` on that request only),
not every refused attempt during the cool-off, so a password-guessing script cannot flood the audit log.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from .services import record_audit


def client_address(request: HttpRequest) -> str:
    """The address a sign-in is throttled under: the socket's, or behind ``BEHIND_TLS_PROXY`` the one the
    nearest trusted proxy saw (``TRUSTED_PROXY_COUNT`` entries from the right of X-Forwarded-For)."""
    remote = request.META.get("REMOTE_ADDR", "")
    if not settings.BEHIND_TLS_PROXY:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    count = max(settings.TRUSTED_PROXY_COUNT, 1)
    return hops[-count] if len(hops) >= count else remote


def record_login_lockout(username: str, *, ip_address: str, path: str) -> None:
    """Append ``core.login.locked_out``: which username, from which address, on which sign-in page."""
    record_audit(
        "core.login.locked_out",
        actor_label=f"anonymous@{ip_address}"[:150],
        after={
            "username": username[:150],
            "ip_address": ip_address,
            "path": path[:200],
            "failures": settings.AXES_FAILURE_LIMIT,
            "cool_off_minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
        },
    )


def audit_lockout(
    sender: object, request: HttpRequest, username: str, ip_address: str, **kwargs: Any
) -> None:
    if getattr(request, "axes_failures_since_start", None) is None:
        return  # an attempt refused during the cool-off: the lockout itself is already audited
    record_login_lockout(username or "", ip_address=ip_address or "", path=request.path)
