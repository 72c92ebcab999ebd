"""First contact: a burst of external domains a user writes to for the first time.

Rule: in a rolling hour ending at ``t`` (a first sighting in the batch's range, or up to an hour after it),
the user wrote to at least ``threshold`` external domains whose first sighting in the user's contact
baseline (``KnownContact``, kept by ``alerts.contacts``) falls in that hour, and the user's first message is
at least ``learning_days`` older than ``t`` (a learning period: at first, every correspondent is new). It
looks at no verdict: a clean-looking lure to hundreds of new domains is caught all the same.

Evidence: the messages that first wrote to the domains of the qualifying hours. The sending-pattern policy
uses it as its rule (c); the sequence policy counts first-contact recipients the same way.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from mailflow.ratewindow import HOUR

from ..detection import Evidence

FIRST_CONTACT_BURST = "first_contact_burst"

Contact = tuple[datetime, str, str]  # (first seen, value, first event id)


def burst(
    contacts: list[Contact],
    threshold: int,
    first_sent: datetime | None,
    learning: timedelta,
    start: datetime,
    end: datetime,
    window: timedelta = HOUR,
) -> tuple[dict, list[Evidence]] | None:
    """Rule (module docstring) over one user's first contacts (oldest first, reaching ``window`` before
    ``start``): ``(reason, evidence)`` of the qualifying windows, or None."""
    if threshold <= 0 or first_sent is None or not contacts:
        return None
    inside: deque[Contact] = deque()
    chosen: dict[str, Contact] = {}
    first_window: tuple[datetime, int] | None = None
    for contact in contacts:
        at = contact[0]
        inside.append(contact)
        while inside and inside[0][0] <= at - window:
            inside.popleft()
        if not (start <= at <= end + window) or first_sent > at - learning:
            continue
        if len(inside) >= threshold:
            first_window = first_window or (at, len(inside))
            chosen.update((c[1], c) for c in inside)
    if first_window is None:
        return None
    evidence = {c[2]: Evidence("message", c[2], c[0]) for c in chosen.values()}
    window_end, count = first_window
    reason = {
        "rule": FIRST_CONTACT_BURST,
        "new_domains": count,
        "threshold": threshold,
        "window": {"start": (window_end - window).isoformat(), "end": window_end.isoformat()},
        "domains": sorted(chosen)[:20],
        "new_domain_total": len(chosen),
    }
    return reason, sorted(evidence.values(), key=lambda e: (e.at, e.event_id))


def count_within(contacts: list[Contact], start: datetime, end: datetime) -> list[Contact]:
    """The contacts first seen in ``[start, end]``."""
    return [c for c in contacts if start <= c[0] <= end]
