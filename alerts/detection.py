"""What a detector returns. Detectors are pure functions of the stored telemetry and the policy:

    detect(policy, mailboxes, start, end) -> list[Detection]

``mailboxes`` are the users touched by a batch (already filtered by the policy's scope);
``start`` / ``end`` the event-time range of the batch. A detector may read further back (baselines,
rolling windows) but reports only evidence it can name by event id, so running it twice adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Evidence:
    kind: str  # AlertEvidence.Kind value
    event_id: str
    at: datetime


@dataclass(frozen=True)
class Breach:
    """A sending limit exceeded: which limit, the count, and the rolling window in which it happened."""

    limit_name: str
    limit: int
    count: int
    window_start: datetime
    window_end: datetime
    counts: dict = field(default_factory=dict)

    def as_reason(self) -> dict:
        return {
            "limit_name": self.limit_name,
            "limit": self.limit,
            "count": self.count,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            **({"counts": self.counts} if self.counts else {}),
        }


@dataclass
class Detection:
    mailbox_id: int
    evidence: list[Evidence]
    details: dict = field(default_factory=dict)
    breach: Breach | None = None
    # Set when the evidence makes it worse than the policy says (a lookalike domain): the higher one wins.
    severity: str | None = None

    def severity_under(self, policy_severity: str) -> str:
        """The alert's severity: the policy's, or this detection's when that is higher."""
        from .models import SEVERITY_RANK

        raised = self.severity or policy_severity
        return max(policy_severity, raised, key=lambda s: SEVERITY_RANK.get(s, 0))
