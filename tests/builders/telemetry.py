"""The telemetry builders' common base: events (ingest contract v1) with unique ids, collected for one batch.

The detector tests (``tests.alerts.builders``) and the playbook tests (``tests.investigations.builders``) each
add the event kinds they need, with their own defaults, and their own ``ingest``.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

HOME = "contoso.example"
OUTSIDE = "fabrikam.example"
# People at HOME the telemetry tests name.
ALICE = f"alice@{HOME}"
BOB = f"bob@{HOME}"
CAROL = f"carol@{HOME}"
DAVE = f"dave@{HOME}"


class TelemetryBase:
    """Collects events for ``tenant``; each gets a unique id (``<prefix>-<n>``) unless one is given."""

    def __init__(self, tenant) -> None:
        self.tenant = tenant
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def _add(self, event: dict[str, Any], event_id: str | None, prefix: str) -> str:
        if isinstance(event["time"], datetime):
            event["time"] = event["time"].isoformat()
        event["id"] = event_id or f"{prefix}-{next(self._ids)}"
        self.events.append(event)
        return event["id"]

    def message(
        self,
        sender: str,
        *,
        at: datetime,
        external: int = 0,
        internal: int = 0,
        verdict: str = "clean",
        subject: str = "Quarterly update",
        external_domain: str = OUTSIDE,
        event_id: str | None = None,
        **fields: Any,
    ) -> str:
        """A message to ``external`` recipients at ``external_domain`` and ``internal`` colleagues at HOME."""
        recipients = [f"ext{i}@{external_domain}" for i in range(external)]
        recipients += [f"int{i}@{HOME}" for i in range(internal)]
        event = {
            "type": "message",
            "time": at,
            "sender": sender,
            "recipients": recipients,
            "subject": subject,
            "verdict": verdict,
            **fields,
        }
        return self._add(event, event_id, "msg")
