"""An alert's ``details`` (whatever its detector recorded: limit, counts, window, forwarding addresses, rule
name...) as label / value rows a person can read. Values stay plain text: the template escapes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

LABELS = {
    "limit_name": "Limit exceeded",
    "limit": "Limit",
    "count": "Count",
    "counts": "Counts",
    "window_start": "Window start",
    "window_end": "Window end",
    "window_minutes": "Window (minutes)",
    "external": "External recipients",
    "internal": "Internal recipients",
    "total": "All recipients",
    "addresses": "Addresses",
    "forward_to": "Forwards to",
    "redirect_to": "Redirects to",
    "rule_name": "Rule name",
    "rule_id": "Rule id",
    "kind": "Kind",
    "not_restricted": "Not restricted because",
    "restriction": "Restriction",
    "placed_by": "Placed by",
    "policy_name": "Policy",
    "country": "Country",
    "countries": "Countries",
    "ip": "IP address",
    "client_app": "Client app",
    "delegate": "Delegate",
    "access": "Access",
    "folder": "Folder",
    "words": "Words",
    "reasons": "Reasons",
    "baseline": "Baseline",
    "bad_share_percent": "Share verdicted bad (%)",
}


@dataclass(frozen=True)
class DetailRow:
    label: str
    value: str
    items: tuple[str, ...] = ()  # a list value, one item per line
    depth: int = 0


def label_for(key: str) -> str:
    return LABELS.get(key, key.replace("_", " ").capitalize())


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value:,}"
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        if "T" in value and moment.tzinfo is not None:
            return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return value
    return str(value)


def describe_details(details: Any, depth: int = 0) -> list[DetailRow]:
    """Flatten a details mapping into rows; nested mappings become indented rows, lists become item lists."""
    if not isinstance(details, dict):
        return [DetailRow("Details", _text(details))] if details else []
    rows: list[DetailRow] = []
    # Known keys in a reading order (limit before count before window), then the rest as recorded.
    order = {key: index for index, key in enumerate(LABELS)}
    for key, value in sorted(details.items(), key=lambda item: order.get(str(item[0]), len(order))):
        label = label_for(str(key))
        if isinstance(value, dict):
            rows.append(DetailRow(label, "", depth=depth))
            rows.extend(describe_details(value, depth + 1))
        elif isinstance(value, list | tuple):
            items = tuple(
                ", ".join(f"{label_for(str(k))}: {_text(v)}" for k, v in item.items())
                if isinstance(item, dict)
                else _text(item)
                for item in value
            )
            rows.append(DetailRow(label, "" if items else "none", items=items, depth=depth))
        else:
            rows.append(DetailRow(label, _text(value), depth=depth))
    return rows
