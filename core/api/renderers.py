"""``?format=cef``: the feed as ArcSight Common Event Format lines, one per entry."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rest_framework import renderers

# CEF severity 0-10 from an alert severity; other kinds are informational (3) unless noted.
_SEVERITY = {"high": 8, "medium": 5, "low": 3, "informational": 1}
_KIND_SEVERITY = {"restriction.placed": 7, "restriction.released": 5}


def _header(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _extension(value: object) -> str:
    text = str(value).replace("\\", "\\\\").replace("=", "\\=")
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def cef_line(entry: dict) -> str:
    """One CEF:0 line for a feed entry (a serialized :class:`~core.models.ChangeFeedEntry`)."""
    data = entry.get("data") or {}
    severity = _SEVERITY.get(str(data.get("severity")), _KIND_SEVERITY.get(entry["kind"], 3))
    name = data.get("title") or entry["kind"]
    extension = {
        "rt": int(datetime.fromisoformat(entry["at"]).timestamp() * 1000),
        "externalId": entry["id"],
        "cs1Label": "tenant",
        "cs1": entry.get("tenant") or "",
        "cs2Label": "target",
        "cs2": f"{entry['target']['type']}:{entry['target']['id']}",
        "cn1Label": "cursor",
        "cn1": entry["cursor"],
    }
    if data.get("user"):
        extension["suser"] = data["user"]
    if data.get("status"):
        extension["outcome"] = data["status"]
    pairs = " ".join(f"{key}={_extension(value)}" for key, value in extension.items())
    return "|".join(
        [
            "CEF:0",
            "SOC Console",
            "soc-console",
            "1",
            _header(entry["kind"]),
            _header(name),
            str(severity),
            pairs,
        ]
    )


class CEFRenderer(renderers.BaseRenderer):
    """Plain text, one CEF line per entry; the next cursor travels in the ``X-Next-Cursor`` header."""

    media_type = "text/plain"
    format = "cef"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if not isinstance(data, dict) or "entries" not in data:
            return (str(data.get("detail", data)) if isinstance(data, dict) else str(data)).encode()
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["X-Next-Cursor"] = data["next_cursor"]
        return "".join(cef_line(entry) + "\n" for entry in data["entries"]).encode()
