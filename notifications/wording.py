"""The wording of notification mails: subjects, the lines an analyst reads, thread ids and console links.

Pure functions of a change document (no database writes): :mod:`notifications.services` plans and records the
mails, :mod:`notifications.transport` carries webhooks.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.urls import reverse

from alerts.models import Severity
from investigations.models import RemediationAction

SUBJECT_MAX = 150
VALUE_MAX = 200
WAITING_KIND = "action.waiting"
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9-]+")


def console_url_for(document: dict[str, Any]) -> str:
    """The console page of a change's target (absolute, from ``CONSOLE_BASE_URL``)."""
    data, target = document.get("data") or {}, document.get("target") or {}
    kind = document.get("kind", "")
    if kind.startswith("alert."):
        path = reverse("console:alert_detail", args=[target.get("id")])
    elif kind.startswith("incident."):
        path = reverse("console:incident_detail", args=[target.get("id")])
    elif kind.startswith("restriction."):
        path = reverse("console:restricted_user_detail", args=[target.get("id")])
    elif data.get("investigation_id"):
        path = reverse("console:investigation_detail", args=[data["investigation_id"]])
    else:
        path = reverse("console:dashboard")
    return settings.CONSOLE_BASE_URL.rstrip("/") + path


def clip(value: Any) -> str:
    """A single-line value of bounded length (addresses, titles and action targets come from telemetry)."""
    text = " ".join(str(value).split())
    return text if len(text) <= VALUE_MAX else text[: VALUE_MAX - 1] + "…"


def when(value: str | None) -> str:
    """An ISO timestamp as an analyst reads it (minutes, UTC)."""
    if not value:
        return ""
    try:
        return f"{datetime.fromisoformat(value).astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    except ValueError:
        return clip(value)


def mail_subject(text: str) -> str:
    text = " ".join(f"[SOC] {text}".split())
    return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 1] + "…"


def describe(kind: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The subject and the template context of a change's mail: what an analyst needs, nothing more."""
    user = clip(data.get("user", ""))
    if kind == "alert.raised":
        severity = Severity(data["severity"]).label if data.get("severity") in Severity.values else ""
        headline = f"{severity} alert: {clip(data.get('title', ''))} for {user}"
        lines = [
            ("User", user),
            ("Severity", severity),
            ("Events", data.get("evidence_count")),
            ("First activity", when(data.get("first_activity_at"))),
        ]
    elif kind == "restriction.placed":
        headline = f"User restricted from sending: {user}"
        lines = [
            ("User", user),
            ("By", clip(data.get("placed_by") or data.get("policy_name", ""))),
            ("Until", when(data.get("expires_at")) or "released by an administrator"),
        ]
    elif kind == "restriction.released":
        flagged = bool(data.get("flagged"))
        headline = f"Restriction released{' past the release cap' if flagged else ''}: {user}"
        lines = [
            ("User", user),
            ("Released by", clip(data.get("released_by", ""))),
            ("Releases in the cap window", data.get("releases_in_window")),
        ]
        if flagged:
            lines.append(("Flagged", "past the release cap: an override reason was given"))
    elif kind == WAITING_KIND:
        action_type = data.get("action_type")
        label = (
            RemediationAction.Type(action_type).label
            if action_type in RemediationAction.Type.values
            else clip(action_type or "")
        )
        headline = f"Action waiting for approval: {label} for {user}"
        lines = [
            ("User", user),
            ("Action", label),
            ("Target", data.get("target", "")),
            ("Proposed", when(data.get("proposed_at"))),
            ("Investigation", f"#{data.get('investigation_id')}"),
        ]
    else:
        status = str(data.get("status", "")).replace("_", " ")
        headline = f"Investigation #{data.get('investigation_id')} {status}: {user}"
        lines = [("User", user), ("Status", status), ("Verdict", data.get("verdict") or "—")]
    return mail_subject(headline), {"headline": headline, "lines": [(k, clip(v)) for k, v in lines if v]}


def thread_of(document: dict[str, Any]) -> str:
    """The deterministic root Message-ID of the thread a change's mail belongs to, or "" for none.

    One thread per alert (``alert.*``), per restriction (``restriction.*``) and per investigation (its status
    changes and its actions), e.g. ``<alert-7@default.soc-console>``.
    """
    kind, data = document.get("kind", ""), document.get("data") or {}
    target_id = (document.get("target") or {}).get("id")
    if kind.startswith("alert.") and target_id is not None:
        key = f"alert-{target_id}"
    elif kind.startswith("restriction.") and target_id is not None:
        key = f"restriction-{target_id}"
    elif data.get("investigation_id") is not None:
        key = f"investigation-{data['investigation_id']}"
    else:
        return ""
    tenant = _UNSAFE_ID_CHARS.sub("-", str(document.get("tenant") or "")).strip("-")
    domain = f"{tenant}.soc-console" if tenant else "soc-console"
    return f"<{_UNSAFE_ID_CHARS.sub('-', key)}@{domain}>"
