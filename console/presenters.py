"""Human text for every stored structure the console shows: audit actions, the before / after of an audit row,
restriction reasons and policy thresholds, with their units. Nothing reaching a page is a Python dict, a list
in brackets or a snake_case code: keys become labels, codes become their choice labels, ISO times become
``YYYY-MM-DD HH:MM UTC``, numbers of a known threshold carry their unit.

Used by the audit log, every History table and the incident timeline (template filters in
``console.templatetags.console_text``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache

from django.apps import apps
from django.db import models
from django.utils.dateparse import parse_datetime

ACTION_LABELS = {
    "alerts.alert.raised": "Alert raised",
    "alerts.alert.folded": "New evidence on the alert",
    "alerts.alert.status_changed": "Alert status changed",
    "alerts.alert.assigned": "Alert assigned",
    "alerts.alert.commented": "Alert commented",
    "alerts.alert.resolved": "Alert resolved",
    "alerts.alert.reopened": "Alert reopened",
    "alerts.policy.updated": "Alert policy changed",
    "alerts.policy.override_set": "Per-mailbox thresholds set",
    "alerts.policy.override_removed": "Per-mailbox thresholds removed",
    "incidents.incident.created": "Incident opened",
    "incidents.incident.alert_added": "Alert added to the incident",
    "incidents.incident.restriction_added": "Restriction added to the incident",
    "incidents.incident.investigation_added": "Investigation added to the incident",
    "incidents.incident.activity_updated": "Incident activity updated",
    "incidents.incident.assigned": "Incident assigned",
    "incidents.incident.status_changed": "Incident status changed",
    "incidents.incident.resolved": "Incident resolved",
    "incidents.incident.reopened": "Incident reopened",
    "investigations.investigation.opened": "Investigation opened",
    "investigations.investigation.run_started": "Investigation run started",
    "investigations.investigation.correlated": "New trigger added to the investigation",
    "investigations.investigation.analyzed": "Investigation run finished",
    "investigations.investigation.failed": "Investigation failed",
    "investigations.investigation.status_changed": "Investigation status changed",
    "investigations.investigation.stopped": "Investigation stopped",
    "investigations.action.proposed": "Action proposed",
    "investigations.action.approved": "Action approved",
    "investigations.action.rejected": "Action rejected",
    "investigations.action.completed": "Action carried out",
    "investigations.action.failed": "Action failed",
    "investigations.action.manual_step_required": "Action needs a manual step",
    "investigations.action.manual_completed": "Manual step done",
    "investigations.action.manual_failed": "Manual step failed",
    "investigations.action.undo_requested": "Undo requested",
    "investigations.action.undone": "Action undone",
    "investigations.action.undo_failed": "Undo failed",
    "investigations.action.expired": "Action expired",
    "investigations.action.retry_scheduled": "Action retry scheduled",
    "investigations.action.lease_expired": "Action queued again (worker stopped)",
    "restricted_users.restriction.placed": "User restricted from sending",
    "restricted_users.restriction.extended": "Restriction extended",
    "restricted_users.restriction.released": "Restriction released",
    "restricted_users.restriction.expired": "Restriction expired",
}

# Keys of audit rows, restriction reasons and details that read better than their capitalised spelling.
KEY_LABELS = {
    "status": "Status",
    "state": "State",
    "assignee": "Assigned to",
    "assigned_to": "Assigned to",
    "classification": "Classification",
    "suppressed_until": "Suppressed until",
    "severity": "Severity",
    "action_type": "Action",
    "target": "Target",
    "target_label": "Target",
    "decision_comment": "Comment",
    "policy_name": "Policy",
    "placed_by": "Placed by",
    "window_start": "Window start",
    "window_end": "Window end",
    "window": "Window",
    "start": "From",
    "end": "To",
    "addresses": "Addresses",
    "count": "Count",
    "counts": "Counts",
    "limit": "Limit",
    "rule": "Rule",
    "external_hour": "External recipients in the hour",
    "internal_hour": "Internal recipients in the hour",
    "total_day": "All recipients in 24 hours",
    "mailbox_address": "Mailbox",
    "expires_at": "Expires",
    "enabled": "Enabled",
    "scope": "Scope",
    "url": "Address",
    "api_token": "API token",
    "ip": "IP address",
    "mfa": "MFA",
}

# Units by a threshold key's ending (policies and per-mailbox overrides share these keys).
UNIT_SUFFIXES = (
    ("_per_hour", "recipients / hour"),
    ("_per_day", "recipients / 24 h"),
    ("_hour", "recipients"),
    ("_day", "recipients"),
    ("_days", "days"),
    ("_percent", "%"),
    ("_kmh", "km/h"),
    ("_multiplier", "×"),
    ("_floor", "recipients / hour"),
    ("_minutes", "min"),
    ("_hours", "h"),
)
UNIT_KEYS = {
    "count": "recipients",
    "limit": "recipients",
    "bad_min_count": "messages",
    "evidence_count": "events",
    "message_count": "messages",
}

SNAKE = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)+$")
ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
ACRONYMS = {"api": "API", "ip": "IP", "mfa": "MFA", "smtp": "SMTP", "imap": "IMAP", "m365": "Microsoft 365"}


def humanize_code(code: str) -> str:
    """``tp_compromised`` → its choice label; any other ``snake_case`` or dotted code → words."""
    label = code_labels().get(code)
    if label:
        return label
    words = re.split(r"[._]+", code)
    text = " ".join(ACRONYMS.get(word, word) for word in words if word)
    return text[:1].upper() + text[1:]


@cache
def code_labels() -> dict[str, str]:
    """Every ``TextChoices`` value of the installed models mapped to its label (the first model wins)."""
    labels: dict[str, str] = {}
    for model in apps.get_models():
        for value in vars(model).values():
            if isinstance(value, type) and issubclass(value, models.TextChoices):
                for code, label in value.choices:
                    labels.setdefault(code, str(label))
    for module_choice in _module_choices():
        for code, label in module_choice.choices:
            labels.setdefault(code, str(label))
    return labels


def _module_choices() -> list[type[models.TextChoices]]:
    from alerts.models import Severity

    return [Severity]


def key_label(key: str) -> str:
    """The label of a stored key: a known one, a threshold's description, or its words."""
    if key in KEY_LABELS:
        return KEY_LABELS[key]
    threshold = threshold_labels().get(key)
    if threshold:
        return threshold
    return humanize_code(str(key))


@cache
def threshold_labels() -> dict[str, str]:
    """Threshold keys of the default policies mapped to their description, without the "(0 = off)" note."""
    from alerts.policies import DEFAULT_POLICIES

    labels: dict[str, str] = {}
    for policy in DEFAULT_POLICIES:
        for key, threshold in policy.thresholds.items():
            text = re.sub(r"\s*\(0 = off\)\s*$", "", threshold.help).lstrip("… ").strip()
            labels.setdefault(key, text[:1].upper() + text[1:])
    return labels


def unit_of(key: str | None) -> str:
    if not key:
        return ""
    if key in UNIT_KEYS:
        return UNIT_KEYS[key]
    for suffix, unit in UNIT_SUFFIXES:
        if key.endswith(suffix):
            return unit
    return ""


def with_unit(number: int | float, key: str | None) -> str:
    """``1,000 recipients / hour``; ``30 %``; a bare number when the key has no known unit."""
    shown = f"{number:,}" if isinstance(number, int) else f"{number:,.2f}".rstrip("0").rstrip(".")
    unit = unit_of(key)
    if not unit:
        return shown
    if unit == "%":
        return f"{shown} %"
    if unit == "×":
        return f"{shown}×"
    if number == 1:
        first, _, rest = unit.partition(" ")
        unit = (first[:-1] if first.endswith("s") else first) + (f" {rest}" if rest else "")
    return f"{shown} {unit}"


def value_text(value: object, key: str | None = None) -> str:
    """One stored value as words: lists joined, mappings as "Label: value; …", codes and times readable."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, int | float):
        return with_unit(value, key)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, str):
        return _string_text(value)
    if isinstance(value, dict):
        if not value:
            return "—"
        return "; ".join(f"{key_label(str(k))}: {value_text(v, str(k))}" for k, v in value.items())
    if isinstance(value, list | tuple | set):
        items = [value_text(item, key) for item in value]
        return ", ".join(items) if items else "none"
    return _string_text(str(value))


def _string_text(value: str) -> str:
    if ISO_TIME.match(value):
        parsed = parse_datetime(value)
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if SNAKE.match(value) and "@" not in value:
        if value in code_labels():
            return code_labels()[value]
        return key_label(value)  # a threshold or measure named as a value ("limit_name": "external_hour")
    return code_labels().get(value, value)


def action_label(action: str) -> str:
    """``alerts.alert.resolved`` → "Alert resolved"; an action without its own label reads as its last two
    parts in words (``m365.connection.tested`` → "Connection tested")."""
    if action in ACTION_LABELS:
        return ACTION_LABELS[action]
    parts = action.split(".")
    tail = parts[-2:] if len(parts) > 2 else parts[-1:]
    return humanize_code("_".join(tail))


def change_lines(before: object, after: object) -> list[str]:
    """What an audit row changed, one line per key: "Status: New → In progress"; a key only after reads
    "Label: value"; a row without mappings reads "before → after"."""
    if isinstance(before, dict) and isinstance(after, dict):
        lines = []
        for key in dict.fromkeys([*before, *after]):
            old, new = before.get(key), after.get(key)
            if key in before and key in after:
                if old != new:
                    lines.append(f"{key_label(key)}: {value_text(old, key)} → {value_text(new, key)}")
            elif key in after:
                lines.append(f"{key_label(key)}: {value_text(new, key)}")
            else:
                lines.append(f"{key_label(key)}: {value_text(old, key)} → —")
        return lines
    if isinstance(after, dict) and before is None:
        return [f"{key_label(k)}: {value_text(v, k)}" for k, v in after.items()]
    if isinstance(before, dict) and after is None:
        return [f"{key_label(k)}: {value_text(v, k)} → —" for k, v in before.items()]
    if before is None and after is None:
        return []
    if before is None:
        return [value_text(after)]
    return [f"{value_text(before)} → {value_text(after)}"]
