"""Builders of contract-v1 events for the mail-flow and directory tests. Times are minutes after ``T0``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def at(minutes: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes)


def iso(minutes: float = 0) -> str:
    return at(minutes).isoformat()


def mailbox_event(event_id: str, address: str, *, minutes: float = 0, **fields: Any) -> dict[str, Any]:
    return {"id": event_id, "type": "mailbox", "time": iso(minutes), "address": address, **fields}


def message(
    event_id: str,
    sender: str = "alice@example.com",
    recipients: list[str] | None = None,
    *,
    minutes: float = 0,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "message",
        "time": iso(minutes),
        "sender": sender,
        "recipients": recipients if recipients is not None else ["bob@example.com"],
        **fields,
    }


def inbox_rule(
    event_id: str,
    mailbox: str,
    rule_id: str,
    operation: str,
    *,
    minutes: float = 0,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "inbox_rule",
        "time": iso(minutes),
        "mailbox": mailbox,
        "rule_id": rule_id,
        "operation": operation,
        **fields,
    }


def forwarding(
    event_id: str, mailbox: str, forward_to: str | None, *, minutes: float = 0, **fields: Any
) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "forwarding",
        "time": iso(minutes),
        "mailbox": mailbox,
        "forward_to": forward_to,
        **fields,
    }


def delegation(
    event_id: str, mailbox: str, delegate: str, access: str, operation: str, *, minutes: float = 0
) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "delegation",
        "time": iso(minutes),
        "mailbox": mailbox,
        "delegate": delegate,
        "access": access,
        "operation": operation,
    }


def sign_in(event_id: str, user: str, ip: str = "198.51.100.7", *, minutes: float = 0, **fields: Any) -> dict:
    return {"id": event_id, "type": "sign_in", "time": iso(minutes), "user": user, "ip": ip, **fields}


def messages(count: int, *, prefix: str = "m", sender: str = "alice@example.com") -> list[dict[str, Any]]:
    """``count`` valid messages with distinct ids, one a second."""
    return [
        message(f"{prefix}-{n}", sender, ["bob@example.com", f"x{n % 7}@partner.example.net"], minutes=n / 60)
        for n in range(count)
    ]
