"""Suspicious activity after an unusual sign-in (issue 21): two halves, each perhaps under its own threshold,
that together tell of a takeover.

Rule: an **unusual sign-in** — one that trips a rule of the sign-in policy (infrequent country, impossible
travel, legacy protocol: :func:`.sign_in.sign_in_hits`, with the sign-in policy's thresholds for the user), or
an **unusual client** (a client app the user did not sign in with in the sign-in policy's look-back, after
its learning period) — followed within ``window_minutes`` by:

- **unusual sending**: ``first_contact_recipients`` or more external recipients written to for the first
  time (``KnownContact``); any message with a link on, or recipients at, a lookalike of the tenant's
  domains; ``lure_recipients`` or more recipients of messages whose subject names a finance word (invoice,
  payment, bank …); any message verdicted phish or malware;
- or a **mailbox change**: an inbox rule created or updated, forwarding set, a delegation added.

Pairs are matched on event time, so the sign-in and what followed may arrive in either order: the detector
looks at sign-ins from ``window`` before the batch's range and at activity up to ``window`` after it.
One detection per user and batch; evidence = the unusual sign-ins and the activity that followed them, by
event id (a re-run adds nothing). The alert is **high** when a lookalike domain or forwarding is involved or
when two kinds of activity followed, else the policy's severity (medium). The sign-in alert keeps its own
semantics: this policy only adds the story. Queries: which users signed in around the range, their activity
around it (first contacts, messages, directory changes), then, only for the users whose activity meets a
threshold, their sign-ins over the look-back and each one's first sign-in.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime, timedelta

from django.db.models import prefetch_related_objects

from core.sql import AnyOf
from mailboxes.models import DirectoryChange, Mailbox
from mailflow.models import MessageEvent

from ..contacts import first_contacts
from ..detection import Detection, Evidence
from ..models import AlertPolicy, KnownContact, Severity
from ..policies import DEFAULTS_BY_KIND, FINANCE_WORDS, SEQUENCE, SIGN_IN
from .common import accepted_domains, directory_changes
from .lookalike import LookalikeMatcher, sent_with_lookalikes
from .sign_in import (
    SignInRecord,
    _travel_horizon,
    first_successful_sign_ins,
    sign_in_history,
    sign_in_hits,
    successful_sign_ins,
)

UNUSUAL_CLIENT = "unusual_client"
FIRST_CONTACT = "first_contact_recipients"
LOOKALIKE = "lookalike_domains"
FINANCE_LURE = "finance_lure"
MALICIOUS_VERDICT = "phish_or_malware"
MAILBOX_CHANGE = "mailbox_change"
_FINANCE_RE = re.compile(r"\b(" + "|".join(map(re.escape, FINANCE_WORDS)) + r")", re.IGNORECASE)
_MALICIOUS = (MessageEvent.Verdict.PHISH, MessageEvent.Verdict.MALWARE)


def detect(policy: AlertPolicy, mailboxes: list[Mailbox], start: datetime, end: datetime) -> list[Detection]:
    if not mailboxes:
        return []
    defaults = {k: t.default for k, t in DEFAULTS_BY_KIND[SEQUENCE].thresholds.items()}
    limits = {m.pk: {**defaults, **policy.thresholds_for(m.address, end)} for m in mailboxes}
    window = max(timedelta(minutes=t["window_minutes"]) for t in limits.values())
    candidates, after = _may_fire(policy, mailboxes, limits, start - window, end, end + window)
    unusual = _unusual_sign_ins(policy, candidates, start - window, end)
    detections = []
    for mailbox_id, sign_ins in unusual.items():
        limit = limits[mailbox_id]
        span = timedelta(minutes=limit["window_minutes"])
        evidence: dict[tuple[str, str], Evidence] = {}
        pairs = []
        kinds: set[str] = set()
        forwarding = False
        for record, rules in sign_ins:
            followed = _followed_by(after.get(mailbox_id, {}), record.at, record.at + span, limit)
            if not followed:
                continue
            evidence[("sign_in", record.event_id)] = record.evidence()
            for kind, items in followed.items():
                kinds.add(kind)
                evidence.update(((e.kind, e.event_id), e) for e in items)
                forwarding = forwarding or any(e.kind == DirectoryChange.Kind.FORWARDING for e in items)
            pairs.append(
                {
                    "sign_in": record.event_id,
                    "at": record.at.isoformat(),
                    "country": record.country,
                    "client_app": record.client_app,
                    "unusual": sorted(rules),
                    "followed_by": {kind: len(items) for kind, items in sorted(followed.items())},
                }
            )
        if not pairs:
            continue
        high = LOOKALIKE in kinds or len(kinds) >= 2 or forwarding
        detections.append(
            Detection(
                mailbox_id=mailbox_id,
                evidence=sorted(evidence.values(), key=lambda e: (e.at, e.event_id)),
                details={
                    "window_minutes": limit["window_minutes"],
                    "sequences": pairs,
                    "kinds": sorted(kinds),
                },
                severity=Severity.HIGH.value if high else None,
            )
        )
    return detections


def _may_fire(
    policy: AlertPolicy,
    mailboxes: list[Mailbox],
    limits: dict[int, dict],
    start: datetime,
    end: datetime,
    until: datetime,
) -> tuple[list[Mailbox], dict[int, dict]]:
    """The users that can fire, and their activity in ``[start, until]``: those with a successful sign-in in
    ``[start, end]`` (one small query) whose activity there meets a threshold, so the sign-in look-back is
    read for them alone (issue 17: the cost follows the batch, not the users' history).

    Both are necessary: an unusual sign-in is a successful one in the range, and what follows it in its
    window is part of the whole range's activity, so a kind short of its threshold over the whole range is
    short in every window. Results are those of evaluating every user (``test_detection_differential.py``).
    """
    signed_in = set(
        successful_sign_ins(policy.tenant_id, [m.pk for m in mailboxes])
        .filter(time__gte=start, time__lte=end)
        .values_list("mailbox_id", flat=True)
        .distinct()
    )
    if not signed_in:
        return [], {}
    activity = _activity(policy, sorted(signed_in), start, until)
    return [
        m for m in mailboxes if m.pk in activity and _followed_by(activity[m.pk], start, until, limits[m.pk])
    ], activity


def _unusual_sign_ins(
    policy: AlertPolicy, mailboxes: list[Mailbox], start: datetime, end: datetime
) -> dict[int, list[tuple[SignInRecord, set[str]]]]:
    """Per user, the unusual successful sign-ins with event time in ``[start, end]`` and the rules each
    tripped (by the tenant's sign-in policy thresholds)."""
    if not mailboxes:
        return {}
    sign_in_policy = AlertPolicy.objects.filter(tenant_id=policy.tenant_id, kind=SIGN_IN).first()
    base = {k: t.default for k, t in DEFAULTS_BY_KIND[SIGN_IN].thresholds.items()}
    if sign_in_policy is not None:
        prefetch_related_objects([sign_in_policy], "overrides")
    limits = {
        m.pk: {**base, **(sign_in_policy.thresholds_for(m.address, end) if sign_in_policy else {})}
        for m in mailboxes
    }
    reach = max(timedelta(days=t["lookback_days"]) for t in limits.values())
    ahead = max(_travel_horizon(t["max_speed_kmh"]) for t in limits.values())
    successful = successful_sign_ins(policy.tenant_id, list(limits))
    history = sign_in_history(successful, start - reach, end + ahead)
    if not history:
        return {}
    first_seen = first_successful_sign_ins(policy.tenant_id, list(history))
    found: dict[int, list[tuple[SignInRecord, set[str]]]] = {}
    for mailbox_id, sign_ins in history.items():
        rules: dict[str, tuple[SignInRecord, set[str]]] = {}
        for hit in sign_in_hits(sign_ins, limits[mailbox_id], first_seen.get(mailbox_id), start, end):
            rules.setdefault(hit.sign_in.event_id, (hit.sign_in, set()))[1].add(hit.rule)
        for record in _unusual_clients(sign_ins, limits[mailbox_id], first_seen.get(mailbox_id), start, end):
            rules.setdefault(record.event_id, (record, set()))[1].add(UNUSUAL_CLIENT)
        if rules:
            found[mailbox_id] = sorted(rules.values(), key=lambda item: (item[0].at, item[0].event_id))
    return found


def _unusual_clients(
    sign_ins: list[SignInRecord], limits: dict, first_seen: datetime | None, start: datetime, end: datetime
) -> list[SignInRecord]:
    """Sign-ins in ``[start, end]`` with a client app the user did not use in the look-back before them
    (after the learning period)."""
    if first_seen is None:
        return []
    lookback, learning = timedelta(days=limits["lookback_days"]), timedelta(days=limits["learning_days"])
    found = []
    for n, current in enumerate(sign_ins):
        if not (start <= current.at <= end) or not current.client_app or first_seen > current.at - learning:
            continue
        earlier = (s.client_app for s in sign_ins[:n] if s.at >= current.at - lookback)
        if current.client_app not in set(earlier):
            found.append(current)
    return found


def _activity(policy: AlertPolicy, ids: list[int], start: datetime, end: datetime) -> dict[int, dict]:
    """Per user, what they did in ``[start, end]`` that can follow an unusual sign-in, as timed evidence."""
    activity: dict[int, dict] = defaultdict(lambda: defaultdict(list))
    for mailbox_id, contacts in first_contacts(ids, KnownContact.Kind.RECIPIENT, start, end).items():
        activity[mailbox_id][FIRST_CONTACT] = [(at, Evidence("message", e, at)) for at, _, e in contacts]
    matcher = LookalikeMatcher(accepted_domains(policy))
    for mailbox_id, messages in sent_with_lookalikes(policy.tenant_id, ids, start, end, matcher).items():
        activity[mailbox_id][LOOKALIKE] = [(m.at, Evidence("message", m.event_id, m.at)) for m in messages]
    rows = MessageEvent.objects.filter(
        AnyOf("sender_id", ids), tenant_id=policy.tenant_id, time__gte=start, time__lte=end
    ).values_list("sender_id", "event_id", "time", "subject", "verdict", "recipient_count")
    for sender_id, event_id, at, subject, verdict, recipients in rows.iterator(chunk_size=5_000):
        evidence = Evidence("message", event_id, at)
        if verdict in _MALICIOUS:
            activity[sender_id][MALICIOUS_VERDICT].append((at, evidence))
        if subject and _FINANCE_RE.search(subject):
            activity[sender_id][FINANCE_LURE].append((at, evidence, recipients))
    mailboxes = [Mailbox(pk=pk, tenant_id=policy.tenant_id) for pk in ids]
    kind = DirectoryChange.Kind
    kinds = (kind.INBOX_RULE, kind.FORWARDING, kind.DELEGATION)
    changes = directory_changes(policy, mailboxes, start, end, kinds=kinds)
    for mailbox_id, items in changes.items():
        for change in items:
            if change.kind == DirectoryChange.Kind.FORWARDING and not change.state.get("forward_to"):
                continue  # forwarding turned off
            activity[mailbox_id][MAILBOX_CHANGE].append((change.at, change.evidence()))
    return activity


def _followed_by(activity: dict, start: datetime, end: datetime, limit: dict) -> dict[str, list[Evidence]]:
    """The kinds of activity (module docstring) in ``[start, end]`` that meet their thresholds."""
    followed: dict[str, list[Evidence]] = {}
    for kind in (FIRST_CONTACT, LOOKALIKE, FINANCE_LURE, MALICIOUS_VERDICT, MAILBOX_CHANGE):
        items = [item for item in activity.get(kind, ()) if start <= item[0] <= end]
        if not items:
            continue
        if kind == FIRST_CONTACT:
            threshold = limit["first_contact_recipients"]
            if threshold <= 0 or len(items) < threshold:
                continue
        if kind == FINANCE_LURE:
            threshold = limit["lure_recipients"]
            if threshold <= 0 or sum(item[2] for item in items) < threshold:
                continue
        followed[kind] = list({item[1].event_id: item[1] for item in items}.values())
    return followed
