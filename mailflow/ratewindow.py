"""Rolling windows over ``(time, value)`` samples: the one definition of "N recipients in a rolling hour" that
the detectors and the Postfix policy service share (DESIGN sections 5 and 9). Pure Python: no ORM, no Redis.

**Window.** The rolling window of length ``W`` ending at ``t`` holds the samples with ``t - W < at <= t``
(half-open: a sample exactly ``W`` before ``t`` has left it, so 300 at 10:00 and 300 at 11:00 are never in
the same hour). A window's content only changes at sample times, and the window ending at any ``t`` holds a
subset of the window ending at the last sample at or before ``t``; so evaluating the windows that end at
sample times covers every window. Simultaneous samples enter together (a window never ends "between" two
samples of the same instant), so results do not depend on the order of simultaneous samples.

**Breach.** A window breaches a limit ``L`` when its sum is *strictly greater* than ``L``: exactly ``L`` does
not fire, ``L + 1`` does. A limit of 0 (or less) is off.

**Algorithm (two pointers).** Samples are sorted by ``(at, key)``. The right pointer adds one time-group of
samples at a time to a running sum; the left pointer then drops samples with ``at <= t - W`` from it. Each
sample enters and leaves once, so a scan is O(n) after the sort, and a window's contributing samples are the
contiguous slice between the pointers.

**Streaming (the policy service).** :class:`RollingSum` is the same algorithm one sample at a time: ``push``
adds on the right, evicts on the left and returns the new sum. The policy service keeps one such window per
(sender, limit) in Redis with the same semantics, in one Lua script per message so that concurrent Postfix
processes agree::

    key = "<prefix>:<tenant>:<sender>:<limit name>"   sorted set: score = epoch ms, member = "<id>:<value>"
    sum = key + ":sum"                                  the running sum
    1. each member of ZRANGEBYSCORE key -inf (t - W)    (at <= t - W has left the window): DECRBY sum value
    2. ZREMRANGEBYSCORE key -inf (t - W)                the left pointer
    3. ZADD NX key t "<id>:<value>"; if added,          the right pointer (a re-sent id counts once)
       INCRBY sum value
    4. PEXPIRE key, sum W                               an idle sender's window vanishes by itself
    5. return sum                                       > limit: a breach

Each member is removed once, so the work per message is O(1) amortised, as here.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

HOUR = timedelta(hours=1)
DAY = timedelta(hours=24)

Limit = int | Callable[[datetime], int]
"""A limit, or the limit in force at a window's end (a per-mailbox override that expires)."""


@dataclass(frozen=True, order=True)
class Sample:
    """One counted event: when, what it names (an event id, for evidence), and how much it counts."""

    at: datetime
    key: str = ""
    value: int = 1


@dataclass(frozen=True)
class WindowSum:
    """The sum of the rolling window ``(start, end]``: the samples ``samples[lo:hi]`` of the scan's sorted
    list (one list shared by every window of a scan, so callers can keep prefix sums over it)."""

    total: int
    start: datetime
    end: datetime
    samples: Sequence[Sample] = field(repr=False, compare=False)
    lo: int = field(repr=False, compare=False)
    hi: int = field(repr=False, compare=False)

    @property
    def items(self) -> tuple[Sample, ...]:
        """The contributing samples, in time order (built on demand: windows of a burst share one list)."""
        return tuple(self.samples[self.lo : self.hi])


def _limit_at(limit: Limit, at: datetime) -> int:
    return limit(at) if callable(limit) else limit


def _sorted(samples: Iterable[Sample]) -> list[Sample]:
    return sorted(s for s in samples if s.value)


def rolling_sums(
    samples: Iterable[Sample],
    window: timedelta,
    *,
    ends_from: datetime | None = None,
    ends_before: datetime | None = None,
) -> Iterator[WindowSum]:
    """Every window that ends at a sample time, in time order, optionally only those ending in
    ``[ends_from, ends_before)``. Zero-valued samples are ignored. Two pointers: O(n) after sorting."""
    if window <= timedelta(0):
        raise ValueError("A rolling window must be longer than zero.")
    ordered = _sorted(samples)
    lo = hi = total = 0
    while hi < len(ordered):
        end = ordered[hi].at
        while hi < len(ordered) and ordered[hi].at == end:  # the right pointer: one instant at a time
            total += ordered[hi].value
            hi += 1
        while ordered[lo].at <= end - window:  # the left pointer: what left the window
            total -= ordered[lo].value
            lo += 1
        if ends_before is not None and end >= ends_before:
            return
        if ends_from is None or end >= ends_from:
            yield WindowSum(total, end - window, end, ordered, lo, hi)


def rolling_max(samples: Iterable[Sample], window: timedelta) -> WindowSum | None:
    """The busiest window (the earliest of equals), or None without samples."""
    best: WindowSum | None = None
    for current in rolling_sums(samples, window):
        if best is None or current.total > best.total:
            best = current
    return best


def window_sum(samples: Iterable[Sample], end: datetime, window: timedelta) -> int:
    """The sum of the window ``(end - window, end]``."""
    return sum(s.value for s in samples if end - window < s.at <= end)


def first_breach(
    samples: Iterable[Sample],
    window: timedelta,
    limit: Limit,
    *,
    ends_from: datetime | None = None,
    ends_before: datetime | None = None,
) -> WindowSum | None:
    """The earliest window whose sum is strictly greater than the limit in force at its end (0 = off)."""
    for current in rolling_sums(samples, window, ends_from=ends_from, ends_before=ends_before):
        value = _limit_at(limit, current.end)
        if value > 0 and current.total > value:
            return current
    return None


def samples_over(
    samples: Iterable[Sample],
    window: timedelta,
    limit: Limit,
    *,
    ends_from: datetime | None = None,
    ends_before: datetime | None = None,
) -> list[Sample]:
    """Every sample that lies in at least one window over the limit, in time order (a burst that goes on past
    its first breach names all of its samples)."""
    over = (
        current
        for current in rolling_sums(samples, window, ends_from=ends_from, ends_before=ends_before)
        if 0 < _limit_at(limit, current.end) < current.total
    )
    return union_of(over)


def union_of(windows: Iterable[WindowSum]) -> list[Sample]:
    """The samples of any of the windows, once each, in time order. The windows must come from one scan, in
    order (as :func:`rolling_sums` yields them): their slices only move right, so the union is O(n)."""
    chosen: list[Sample] = []
    taken_until = 0  # index into the scan's sorted samples: everything before it is chosen or ruled out
    for current in windows:
        chosen.extend(current.samples[max(current.lo, taken_until) : current.hi])
        taken_until = max(taken_until, current.hi)
    return chosen


class RollingSum:
    """One rolling window fed one sample at a time (the policy service's form of :func:`rolling_sums`).

    ``push`` returns the sum of the window ending at the newest time seen. A sample older than that window
    (``at <= newest - window``) cannot count any more and is ignored; one that is late but still inside is
    inserted in order. The same key pushed twice counts once (a re-sent event).
    """

    def __init__(self, window: timedelta) -> None:
        if window <= timedelta(0):
            raise ValueError("A rolling window must be longer than zero.")
        self.window = window
        self.total = 0
        self.newest: datetime | None = None
        self._items: list[Sample] = []
        self._keys: set[str] = set()

    def push(self, sample: Sample) -> int:
        if self.newest is not None and sample.at <= self.newest - self.window:
            return self.total
        if sample.key and sample.key in self._keys:
            return self.total
        bisect.insort(self._items, sample)
        self._keys.add(sample.key)
        self.total += sample.value
        self.newest = sample.at if self.newest is None else max(self.newest, sample.at)
        horizon = self.newest - self.window
        gone = 0
        while gone < len(self._items) and self._items[gone].at <= horizon:
            self.total -= self._items[gone].value
            self._keys.discard(self._items[gone].key)
            gone += 1
        if gone:
            del self._items[:gone]
        return self.total

    @property
    def items(self) -> tuple[Sample, ...]:
        return tuple(self._items)


# --------------------------------------------------------------------------------------------- sending limits


@dataclass(frozen=True)
class SendingLimits:
    """The three outbound limits of the sending-limit policy, in recipients; 0 turns a limit off."""

    external_per_hour: int
    internal_per_hour: int
    total_per_day: int

    @classmethod
    def from_thresholds(cls, thresholds: dict[str, int]) -> SendingLimits:
        return cls(
            external_per_hour=int(thresholds["external_per_hour"]),
            internal_per_hour=int(thresholds["internal_per_hour"]),
            total_per_day=int(thresholds["total_per_day"]),
        )

    @property
    def any_on(self) -> bool:
        return any(getattr(self, name) > 0 for name in LIMIT_WINDOWS)


# The limits in the order a tie (two limits first breached at the same instant) is reported.
LIMIT_WINDOWS: dict[str, timedelta] = {
    "external_per_hour": HOUR,
    "internal_per_hour": HOUR,
    "total_per_day": DAY,
}


@dataclass(frozen=True)
class SentMessage:
    """What the sending limits count of one sent message: its recipients, by kind."""

    key: str
    at: datetime
    external_count: int
    internal_count: int
    recipient_count: int

    def count_for(self, limit_name: str) -> int:
        if limit_name == "external_per_hour":
            return self.external_count
        if limit_name == "internal_per_hour":
            return self.internal_count
        return self.recipient_count


@dataclass(frozen=True)
class SendingBreach:
    """The first sending limit exceeded: which one, its count in the window ``(window_start, window_end]``,
    all three counts at that instant (``external_hour``, ``internal_hour``, ``total_day``) and the messages
    that made up the breaching window."""

    limit_name: str
    limit: int
    count: int
    window_start: datetime
    window_end: datetime
    counts: dict[str, int]
    messages: tuple[SentMessage, ...]

    def without_messages(self) -> dict[str, Any]:
        """Every field but ``messages``: what an alert's :class:`~alerts.detection.Breach` records."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "messages"}


LimitsAt = SendingLimits | Callable[[datetime], SendingLimits]


def _limits_at(limits: LimitsAt, at: datetime) -> SendingLimits:
    return limits(at) if callable(limits) else limits


def _limit_of(limits: LimitsAt, name: str) -> Callable[[datetime], int]:
    """One named limit as a function of the window's end."""
    return lambda at: getattr(_limits_at(limits, at), name)


def _series(messages: Sequence[SentMessage], limit_name: str) -> list[Sample]:
    return [Sample(m.at, m.key, m.count_for(limit_name)) for m in messages]


def _counted(messages: Iterable[SentMessage], not_before: datetime | None) -> list[SentMessage]:
    return sorted(
        (m for m in messages if not_before is None or m.at >= not_before), key=lambda m: (m.at, m.key)
    )


def find_breach(
    messages: Iterable[SentMessage],
    limits: LimitsAt,
    *,
    not_before: datetime | None = None,
    ends_from: datetime | None = None,
    ends_before: datetime | None = None,
) -> SendingBreach | None:
    """The earliest breach of any of the three limits, or None.

    Messages before ``not_before`` do not count (mail sent after a release counts from zero). ``limits`` may
    be a function of the window's end, for thresholds that change over time (an override that expires). Only
    windows ending in ``[ends_from, ends_before)`` are considered. Two limits breached at the same instant
    are reported in the order of :data:`LIMIT_WINDOWS`.
    """
    counted = _counted(messages, not_before)
    by_key = {m.key: m for m in counted}
    found: list[tuple[datetime, int, str, WindowSum, int]] = []
    for rank, (name, window) in enumerate(LIMIT_WINDOWS.items()):
        limit = _limit_of(limits, name)
        breach = first_breach(
            _series(counted, name), window, limit, ends_from=ends_from, ends_before=ends_before
        )
        if breach is not None:
            found.append((breach.end, rank, name, breach, limit(breach.end)))
    if not found:
        return None
    end, _, name, window_sum_, limit_value = min(found, key=lambda f: (f[0], f[1]))
    counts = {
        "external_hour": window_sum(_series(counted, "external_per_hour"), end, HOUR),
        "internal_hour": window_sum(_series(counted, "internal_per_hour"), end, HOUR),
        "total_day": window_sum(_series(counted, "total_per_day"), end, DAY),
    }
    return SendingBreach(
        limit_name=name,
        limit=limit_value,
        count=window_sum_.total,
        window_start=window_sum_.start,
        window_end=end,
        counts=counts,
        messages=tuple(by_key[s.key] for s in window_sum_.items),
    )


def messages_over_limits(
    messages: Iterable[SentMessage],
    limits: LimitsAt,
    *,
    not_before: datetime | None = None,
    ends_from: datetime | None = None,
    ends_before: datetime | None = None,
) -> list[SentMessage]:
    """Every counted message in at least one window over any of the limits, in time order."""
    counted = _counted(messages, not_before)
    by_key = {m.key: m for m in counted}
    keys: set[str] = set()
    for name, window in LIMIT_WINDOWS.items():
        over = samples_over(
            _series(counted, name),
            window,
            _limit_of(limits, name),
            ends_from=ends_from,
            ends_before=ends_before,
        )
        keys.update(s.key for s in over)
    return [by_key[key] for key in sorted(keys, key=lambda k: (by_key[k].at, k))]
