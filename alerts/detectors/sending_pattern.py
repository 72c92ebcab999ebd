"""Suspicious email sending patterns detected (DESIGN section 5, issue 21). Rules over rolling windows that
end at the user's message times:

(a) **volume spike**: the recipients of a rolling hour ending at ``t`` exceed both ``hourly_floor`` and
    ``baseline_multiplier`` × the user's busiest rolling hour ending in ``(t − 7 d, t − 1 h]`` (the previous 7
    days, not overlapping the hour itself). It needs ``learning_days`` of history: the user's first message is
    at least that old at ``t`` (a learning period). A floor of 0 turns the rule off.
(b) **malicious share**: of the messages the user sent in the rolling 24 hours ending at ``t`` (internal or
    external), at least ``bad_share_percent`` % are verdicted spam, phish or malware, and at least
    ``bad_min_count`` of them are.
(c) **first-contact burst** (:mod:`.first_contact`): at least ``first_contact_domains`` external domains
    written to for the first time in a rolling hour, after the learning period, whatever the verdicts.
(d) **lookalike domains** (:mod:`.lookalike`): messages in the range with a link on, or recipients at, a
    domain imitating one of the tenant's accepted domains. Such messages make the alert **high**, whichever
    rules fired.

Which windows: those ending from the batch's ``start`` up to an hour (a) or a day (b) after its ``end``, since
a late message also fills the windows after it. Evidence = the messages of the anomalous hours (a) and the
bad messages of the qualifying days (b), by event id; details list each rule's first window. Thresholds are
the mailbox's (``thresholds_for``). A few bulk queries for the whole batch: the messages around the range,
each user's first message, the first contacts around the range, the accepted domains and the range's
messages with URLs or external recipients.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import prefetch_related_objects

from core.sql import AnyOf
from mailboxes.models import Mailbox
from mailflow.models import MessageEvent
from mailflow.ratewindow import DAY, HOUR, Sample, WindowSum, rolling_sums, union_of

from ..contacts import first_contacts
from ..detection import Detection, Evidence
from ..models import AlertPolicy, KnownContact, Severity
from ..policies import DEFAULTS_BY_KIND, SENDING_PATTERN
from . import first_contact, volume_bounds
from .common import accepted_domains, first_times, with_reasons
from .lookalike import LookalikeMatcher, sent_with_lookalikes

BASELINE_SPAN = timedelta(days=7)
VOLUME_SPIKE = "volume_spike"
MALICIOUS_SHARE = "malicious_share"
LOOKALIKE_DOMAINS = "lookalike_domains"
_FIRST_CONTACT_DEFAULT = DEFAULTS_BY_KIND[SENDING_PATTERN].thresholds["first_contact_domains"].default


@dataclass(frozen=True)
class _Sent:
    event_id: str
    at: datetime
    recipients: int
    bad: bool


def detect(policy: AlertPolicy, mailboxes: list[Mailbox], start: datetime, end: datetime) -> list[Detection]:
    if not mailboxes:
        return []
    prefetch_related_objects([policy], "overrides")
    all_ids = [m.pk for m in mailboxes]
    # The volume rules (a, b) can fire only for the users whose minute counters reach a threshold: read the
    # messages of those alone. First contacts (c) and lookalikes (d) do not depend on volume: every user.
    volume_ids = {m.pk for m in volume_bounds.may_show_sending_patterns(policy, mailboxes, start, end)}
    contacts = first_contacts(all_ids, KnownContact.Kind.DOMAIN, start - HOUR, end + HOUR)
    lookalikes = sent_with_lookalikes(
        policy.tenant_id, all_ids, start, end, LookalikeMatcher(accepted_domains(policy))
    )
    thresholds_of = {m.pk: policy.thresholds_for(m.address, end) for m in mailboxes}
    first_sent = first_messages(
        policy.tenant_id, volume_ids | {pk for pk, found in contacts.items() if found}
    )
    sent = _sent_around(policy.tenant_id, volume_ids, thresholds_of, first_sent, start, end)
    detections = []
    for mailbox in mailboxes:
        history = sent.get(mailbox.pk, [])
        if not history and not contacts.get(mailbox.pk) and mailbox.pk not in lookalikes:
            continue
        thresholds = thresholds_of[mailbox.pk]
        by_id = {m.event_id: m for m in history}
        reasons: list[dict] = []
        chosen: dict[str, Evidence] = {}
        for rule in (_volume_spikes, _malicious_share) if history else ():
            found = rule(history, thresholds, first_sent.get(mailbox.pk), start, end)
            if found is not None:
                reason, event_ids = found
                reasons.append(reason)
                chosen.update((i, Evidence("message", i, by_id[i].at)) for i in event_ids)
        burst = first_contact.burst(
            contacts.get(mailbox.pk, []),
            thresholds.get("first_contact_domains", _FIRST_CONTACT_DEFAULT),
            first_sent.get(mailbox.pk),
            timedelta(days=thresholds["learning_days"]),
            start,
            end,
        )
        if burst is not None:
            reasons.append(burst[0])
            chosen.update((e.event_id, e) for e in burst[1])
        severity = None
        if mailbox.pk in lookalikes:
            severity = Severity.HIGH.value
            hits = lookalikes[mailbox.pk]
            domains = {x.domain: x for m in hits for x in m.lookalikes}
            reasons.append(
                {
                    "rule": LOOKALIKE_DOMAINS,
                    "messages": len(hits),
                    "lookalikes": [x.as_dict() for x in sorted(domains.values(), key=lambda x: x.domain)],
                }
            )
            chosen.update((m.event_id, Evidence("message", m.event_id, m.at)) for m in hits)
        if chosen:
            detections.append(with_reasons(mailbox.pk, chosen.values(), reasons, severity))
    return detections


def first_messages(tenant_id: int, sender_ids: set[int]) -> dict[int, datetime]:
    """Each sender's first message (senders without one are absent), by :func:`.common.first_times`."""
    if not sender_ids:
        return {}
    return first_times(MessageEvent.objects.filter(tenant_id=tenant_id), "sender_id", sender_ids)


def _near_span() -> timedelta:
    """How far before the batch the volume rules first read a user's messages: a day, what rule (b) needs
    (the differential test widens it to the baseline's 7 days and an hour, the detector as it was)."""
    return DAY


def _sent_around(
    tenant_id: int,
    sender_ids: set[int],
    thresholds_of: dict[int, dict[str, int]],
    first_sent: dict[int, datetime],
    start: datetime,
    end: datetime,
) -> dict[int, list[_Sent]]:
    """Per user, the messages rules (a) and (b) need, read a day before the range (not the 7 days of the
    busiest-hour baseline) to a day after it.

    Rule (b) needs no more. Rule (a) over the shorter read sees every candidate hour whole and a baseline
    that can only be lower (fewer and partial hours before them), so it finds every spike the 7 days would
    and maybe more: only the users it flags are read again over the 7 days (then evaluated as before), and
    a user whose last day holds a busier hour than their candidates costs one day of messages, not eight.
    Results are those of the 7-day read (``tests/alerts/test_volume_bounds.py``)."""
    if not sender_ids:
        return {}
    near_from, full_from = start - _near_span(), start - BASELINE_SPAN - HOUR
    sent = _sent_by(tenant_id, sender_ids, max(near_from, full_from), end + DAY)
    if near_from > full_from:
        spiking = [
            pk
            for pk, history in sent.items()
            if _volume_spikes(history, thresholds_of[pk], first_sent.get(pk), start, end) is not None
        ]
        if spiking:
            sent.update(_sent_by(tenant_id, set(spiking), full_from, end + DAY))
    return sent


def _sent_by(
    tenant_id: int, sender_ids: set[int], since: datetime, until: datetime
) -> dict[int, list[_Sent]]:
    """Per sender, their messages in ``[since, until]`` in (time, event id) order (one query)."""
    sent: dict[int, list[_Sent]] = defaultdict(list)
    rows = (
        MessageEvent.objects.filter(
            AnyOf("sender_id", sender_ids), tenant_id=tenant_id, time__gte=since, time__lte=until
        )
        .order_by("sender_id", "time", "event_id")
        .values_list("sender_id", "event_id", "time", "recipient_count", "verdict")
    )
    for sender_id, event_id, at, recipients, verdict in rows:
        sent[sender_id].append(_Sent(event_id, at, recipients, verdict in MessageEvent.BAD_VERDICTS))
    return sent


def _window(current: WindowSum) -> dict[str, str]:
    return {"start": current.start.isoformat(), "end": current.end.isoformat()}


def _busiest_before(hours: list[WindowSum], candidates: list[WindowSum]) -> Iterator[tuple[WindowSum, int]]:
    """For each candidate hour ending at ``t`` (in time order), the busiest hour ending in
    ``(t - 7 d, t - 1 h]``.

    A sliding-window maximum: ``hours`` enter the deque as ``t - 1 h`` passes their end and leave as
    ``t - 7 d`` does; the deque keeps decreasing totals, so its head is the maximum. O(n) overall.
    """
    peak: deque[WindowSum] = deque()
    entered = 0
    for candidate in candidates:
        while entered < len(hours) and hours[entered].end <= candidate.end - HOUR:
            while peak and peak[-1].total <= hours[entered].total:
                peak.pop()
            peak.append(hours[entered])
            entered += 1
        while peak and peak[0].end <= candidate.end - BASELINE_SPAN:
            peak.popleft()
        yield candidate, peak[0].total if peak else 0


def _volume_spikes(
    history: list[_Sent],
    thresholds: dict[str, int],
    first_sent: datetime | None,
    start: datetime,
    end: datetime,
) -> tuple[dict, list[str]] | None:
    """Rule (a): hours above the floor and the multiple of the user's busiest hour of the previous 7 days."""
    floor, multiplier = thresholds["hourly_floor"], thresholds["baseline_multiplier"]
    learning = timedelta(days=thresholds["learning_days"])
    if floor <= 0 or first_sent is None:
        return None
    hours = list(rolling_sums((Sample(m.at, m.event_id, m.recipients) for m in history), HOUR))
    candidates = [
        h for h in hours if start <= h.end < end + HOUR and h.total > floor and first_sent <= h.end - learning
    ]
    anomalous = [
        (hour, baseline)
        for hour, baseline in _busiest_before(hours, candidates)
        if hour.total > multiplier * baseline
    ]
    if not anomalous:
        return None
    first, baseline = anomalous[0]
    reason = {
        "rule": VOLUME_SPIKE,
        "recipients": first.total,
        "baseline": baseline,
        "multiplier": multiplier,
        "floor": floor,
        "window": _window(first),
        "anomalous_hours": len(anomalous),
    }
    return reason, [s.key for s in union_of(hour for hour, _ in anomalous)]


def _malicious_share(
    history: list[_Sent],
    thresholds: dict[str, int],
    first_sent: datetime | None,
    start: datetime,
    end: datetime,
) -> tuple[dict, list[str]] | None:
    """Rule (b): days in which enough of the user's mail, and enough messages, were verdicted malicious."""
    percent, minimum = thresholds["bad_share_percent"], thresholds["bad_min_count"]
    if minimum <= 0:
        return None
    bad = {m.event_id for m in history if m.bad}
    if len(bad) < minimum:
        return None
    days = rolling_sums(
        (Sample(m.at, m.event_id) for m in history), DAY, ends_from=start, ends_before=end + DAY
    )
    prefix: list[int] = []
    qualifying: list[tuple[WindowSum, int]] = []
    for day in days:
        if not prefix:  # bad counts over the scan's sorted samples, built once
            prefix = [0]
            for sample in day.samples:
                prefix.append(prefix[-1] + (sample.key in bad))
        bad_count = prefix[day.hi] - prefix[day.lo]
        if bad_count >= minimum and bad_count * 100 >= percent * day.total:
            qualifying.append((day, bad_count))
    if not qualifying:
        return None
    first, bad_count = qualifying[0]
    reason = {
        "rule": MALICIOUS_SHARE,
        "bad": bad_count,
        "sent": first.total,
        "share_percent": round(100 * bad_count / first.total, 1),
        "threshold_percent": percent,
        "min_count": minimum,
        "window": _window(first),
    }
    return reason, [s.key for s in union_of(day for day, _ in qualifying) if s.key in bad]
