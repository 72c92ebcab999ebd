"""Email sending limit exceeded (DESIGN section 5): the detector that restricts.

Rule: the user's recipients, counted per recipient, exceed ``external_per_hour`` external recipients or
``internal_per_hour`` internal recipients in a rolling hour, or ``total_per_day`` recipients in a rolling
24 hours (strictly more than the limit; 0 turns a limit off; the window semantics are
:mod:`mailflow.ratewindow`'s). The limits are the mailbox's at each window's end
(``policy.thresholds_for(address, at)``), so an override applies while it is in force and not after it
expires. Mail sent before a release of the user does not count in windows ending after it (mail sent after a
release counts from zero).

Which windows: those ending from the batch's ``start`` up to 24 hours after its ``end``, because events arrive
in any order and a late message also fills the windows that end after it. So messages in
``[start - 24 h, end + 24 h]`` are read, in one query for the whole batch, plus one query for the releases.

Result per user with a breach: evidence = every message in any window over a limit (a burst that goes on
folds in as more evidence), the details and :class:`~alerts.detection.Breach` of the *first* breach by time,
with all three counts at its end. Evidence is named by message event id, so a re-run adds nothing.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

from django.db.models import prefetch_related_objects

from core.sql import AnyOf
from mailboxes.models import Mailbox
from mailflow.models import MessageEvent
from mailflow.ratewindow import (
    DAY,
    SendingBreach,
    SendingLimits,
    SentMessage,
    find_breach,
    messages_over_limits,
)
from restricted_users.models import Restriction

from ..detection import Breach, Detection, Evidence
from ..models import AlertPolicy
from . import volume_bounds


def limits_over_time(policy: AlertPolicy, address: str) -> Callable[[datetime], SendingLimits]:
    """The mailbox's limits as a function of time: they change only where one of its overrides expires, so
    ``thresholds_for`` is asked once per stretch between expiries (the overrides must be prefetched)."""
    overrides = [o for o in policy.overrides.all() if o.mailbox_address == address]
    expiries = sorted(o.expires_at for o in overrides if o.expires_at is not None)
    known: dict[int, SendingLimits] = {}

    def at(moment: datetime) -> SendingLimits:
        stretch = bisect.bisect_right(expiries, moment)  # overrides expired at ``moment``: expires_at <= it
        if stretch not in known:
            known[stretch] = SendingLimits.from_thresholds(policy.thresholds_for(address, moment))
        return known[stretch]

    return at


def _stretches(releases: list[datetime]) -> list[tuple[datetime | None, datetime | None]]:
    """The stretches of time between releases: in each, only mail sent since its start counts."""
    bounds: list[datetime | None] = [None, *sorted(releases), None]
    return list(zip(bounds, bounds[1:], strict=False))


def detect(policy: AlertPolicy, mailboxes: list[Mailbox], start: datetime, end: datetime) -> list[Detection]:
    if not mailboxes:
        return []
    prefetch_related_objects([policy], "overrides")
    # Only the users whose minute counters reach a threshold can fire: read the messages of those alone.
    mailboxes = volume_bounds.may_exceed_sending_limits(policy, mailboxes, start, end)
    if not mailboxes:
        return []
    ids = [m.pk for m in mailboxes]
    sent: dict[int, list[SentMessage]] = defaultdict(list)
    rows = (
        MessageEvent.objects.filter(
            AnyOf("sender_id", ids), tenant_id=policy.tenant_id, time__gte=start - DAY, time__lte=end + DAY
        )
        .order_by("sender_id", "time", "event_id")
        .values_list("sender_id", "event_id", "time", "external_count", "internal_count", "recipient_count")
    )
    for sender_id, event_id, at, external, internal, total in rows:
        sent[sender_id].append(SentMessage(event_id, at, external, internal, total))
    releases: dict[int, list[datetime]] = defaultdict(list)
    for mailbox_id, released_at in Restriction.objects.filter(
        AnyOf("mailbox_id", ids), released_at__gt=start - DAY, released_at__lte=end + DAY
    ).values_list("mailbox_id", "released_at"):
        if released_at is not None:  # always, by the filter: the column is nullable
            releases[mailbox_id].append(released_at)

    detections = []
    for mailbox in mailboxes:
        messages = sent.get(mailbox.pk)
        if not messages:
            continue
        limits = limits_over_time(policy, mailbox.address)
        first: SendingBreach | None = None
        over: dict[str, SentMessage] = {}
        for since, until in _stretches(releases.get(mailbox.pk, [])):
            ends_from = start if since is None else max(start, since)
            ends_before = end + DAY if until is None else min(end + DAY, until)
            if ends_from >= ends_before:
                continue
            bounds = {"not_before": since, "ends_from": ends_from, "ends_before": ends_before}
            if first is None:
                first = find_breach(messages, limits, **bounds)
            over.update((m.key, m) for m in messages_over_limits(messages, limits, **bounds))
        if first is None:
            continue
        detections.append(
            Detection(
                mailbox_id=mailbox.pk,
                evidence=[Evidence("message", m.key, m.at) for m in sorted(over.values(), key=_order)],
                details={
                    "limit_name": first.limit_name,
                    "limit": first.limit,
                    "count": first.count,
                    "counts": first.counts,
                    "window": {"start": first.window_start.isoformat(), "end": first.window_end.isoformat()},
                },
                breach=Breach(**first.without_messages()),
            )
        )
    return detections


def _order(message: SentMessage) -> tuple[datetime, str]:
    return message.at, message.key
