"""Which users of a batch could fire the volume detectors, from the minute counters (issue 17).

The sending-limit and sending-pattern detectors read every message of a touched user over a day (or eight)
around the batch. Most users of any batch are nowhere near a limit; for them,
:func:`mailflow.counters.busiest_windows` gives, in one query over their minute rows, an upper bound of every
rolling hour and day that a detector would evaluate. A user whose bound does not reach a rule's threshold
cannot fire it, so the detectors read messages only for the others, and their results are the same as
reading everyone's (``tests/alerts/test_volume_bounds.py`` runs both ways and compares).

Bounds only ever over-count (a window's end minute and the minutes before it; mail sent before a release
still counted), so a user can be a candidate and not fire, never the reverse.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from mailboxes.models import Mailbox
from mailflow.counters import busiest_windows
from mailflow.ratewindow import DAY, LIMIT_WINDOWS, SendingLimits

from ..models import AlertPolicy

HOUR_MINUTES = 60
DAY_MINUTES = 24 * 60
_LIMIT_COUNTERS = {
    "external_per_hour": ("external", HOUR_MINUTES),
    "internal_per_hour": ("internal", HOUR_MINUTES),
    "total_per_day": ("total", DAY_MINUTES),
}


def lowest_limits(
    policy: AlertPolicy, address: str, ends_from: datetime, ends_to: datetime
) -> dict[str, int]:
    """The lowest value each sending limit that is on takes for ``address`` at a window end in
    ``[ends_from, ends_to]``. Limits change only where an override expires, so they are read at ``ends_from``
    and at each such expiry (the policy's overrides must be prefetched)."""
    moments = [ends_from] + [
        o.expires_at
        for o in policy.overrides.all()
        if o.mailbox_address == address and o.expires_at is not None and ends_from < o.expires_at <= ends_to
    ]
    stretches = [SendingLimits.from_thresholds(policy.thresholds_for(address, at)) for at in moments]
    lowest: dict[str, int] = {}
    for name in LIMIT_WINDOWS:
        values = [getattr(limits, name) for limits in stretches if getattr(limits, name) > 0]
        if values:
            lowest[name] = min(values)
    return lowest


def _reaching(
    policy: AlertPolicy,
    mailboxes: list[Mailbox],
    windows: dict[str, tuple[str, int]],
    start: datetime,
    end: datetime,
    reaches: Callable[[Mailbox, dict[str, int]], bool],
) -> list[Mailbox]:
    """The mailboxes with minute rows whose busiest ``windows`` ending from ``start`` to a day after ``end``
    ``reaches`` a threshold (one query for all of them)."""
    bounds = busiest_windows(policy.tenant_id, [m.pk for m in mailboxes], windows, start, end + DAY)
    return [m for m in mailboxes if (bound := bounds.get(m.pk)) is not None and reaches(m, bound)]


def may_exceed_sending_limits(
    policy: AlertPolicy, mailboxes: list[Mailbox], start: datetime, end: datetime
) -> list[Mailbox]:
    """The mailboxes whose counters reach past a sending limit in a window ending from ``start`` to a day
    after ``end`` (the windows the sending-limit detector evaluates)."""

    def past_a_limit(mailbox: Mailbox, bound: dict[str, int]) -> bool:
        lowest = lowest_limits(policy, mailbox.address, start, end + DAY)
        return any(bound[name] > limit for name, limit in lowest.items())

    return _reaching(policy, mailboxes, _LIMIT_COUNTERS, start, end, past_a_limit)


def may_show_sending_patterns(
    policy: AlertPolicy, mailboxes: list[Mailbox], start: datetime, end: datetime
) -> list[Mailbox]:
    """The mailboxes whose counters reach a sending-pattern rule: an hour above the floor (volume spike) or a
    day with at least the minimum of bad messages (malicious share), in windows ending from ``start`` to a
    day after ``end``. Thresholds as the detector reads them (at ``end``)."""

    def at_a_rule(mailbox: Mailbox, bound: dict[str, int]) -> bool:
        thresholds = policy.thresholds_for(mailbox.address, end)
        floor, minimum = thresholds["hourly_floor"], thresholds["bad_min_count"]
        return (floor > 0 and bound["hour"] > floor) or (minimum > 0 and bound["bad_day"] >= minimum)

    windows = {"hour": ("total", HOUR_MINUTES), "bad_day": ("bad", DAY_MINUTES)}
    return _reaching(policy, mailboxes, windows, start, end, at_a_rule)
