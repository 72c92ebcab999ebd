"""Activity from infrequent country / impossible travel (DESIGN section 5).

Rules, over the user's *successful* sign-ins, for each one with event time in the batch's range:

- **infrequent country**: its country had no successful sign-in of the user in the ``lookback_days`` before
  it, and the user's successful sign-in history began at least ``learning_days`` before it (a learning
  period: a new user's every country is new);
- **impossible travel**: it and the user's previous (or next) successful sign-in are in different countries
  whose centroids are further apart than ``max_speed_kmh`` allows for the time between them (same-country
  pairs and countries without a centroid are skipped); the pair is charged to the sign-in from the country
  the user signed in from less often in the lookback (a tie: the later one);
- **legacy protocol**: it authenticated over IMAP, POP or SMTP (no modern authentication, no MFA).

Evidence: the sign-ins by their ingest event id (kind ``sign_in``; of an impossible pair, the one blamed,
while the details name both); details list each reason. :func:`sign_in_hits` is the one implementation of
these rules: the investigation's sign-in analyzer calls it too. Thresholds
per mailbox (``thresholds_for``). Three bulk queries for the whole batch: the overrides, the sign-ins around
the range and each user's first successful sign-in. Deterministic: sign-ins are ordered by (time, id).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max, QuerySet, prefetch_related_objects
from django.db.models.functions import Upper

from core.sql import AnyOf
from mailboxes.models import Mailbox, SignIn

from ..detection import Detection, Evidence
from ..models import AlertPolicy
from .common import first_times, with_reasons
from .geo import MAX_DISTANCE_KM, country_distance_km

INFREQUENT_COUNTRY = "infrequent_country"
IMPOSSIBLE_TRAVEL = "impossible_travel"
LEGACY_PROTOCOL = "legacy_protocol"


@dataclass(frozen=True)
class SignInRecord:
    """One successful sign-in as the rules read it (the detector and the investigation's analyzer alike)."""

    event_id: str
    at: datetime
    country: str
    client_app: str
    ip: str = ""

    def evidence(self) -> Evidence:
        return Evidence("sign_in", self.event_id, self.at)


@dataclass(frozen=True)
class SignInHit:
    """A rule a sign-in tripped. ``sign_in`` is the one blamed; for impossible travel ``pair`` is (earlier,
    later) and the blamed one is the sign-in from the country the user signed in from less often in the
    ``lookback_days`` before the later one (the other is most likely the user; a tie blames the later)."""

    rule: str
    sign_in: SignInRecord
    pair: tuple[SignInRecord, SignInRecord] | None = None
    distance_km: float | None = None
    hours: float | None = None

    @property
    def other(self) -> SignInRecord | None:
        if self.pair is None:
            return None
        return self.pair[0] if self.pair[1] is self.sign_in else self.pair[1]


def _travel_horizon(max_speed_kmh: int) -> timedelta:
    """Sign-ins further apart than this can never be impossible travel (no two places are further apart)."""
    return timedelta(hours=MAX_DISTANCE_KM / max(max_speed_kmh, 1))


def successful_sign_ins(tenant_id: int, mailbox_ids: list[int]) -> QuerySet[SignIn]:
    """The successful sign-ins of these users: what every sign-in rule reads."""
    return SignIn.objects.filter(
        AnyOf("mailbox_id", mailbox_ids), tenant_id=tenant_id, result=SignIn.Result.SUCCESS
    )


def sign_in_history(
    successful: QuerySet[SignIn], since: datetime, until: datetime
) -> dict[int, list[SignInRecord]]:
    """Per user, their sign-ins of ``successful`` in ``[since, until]`` in event order (one query)."""
    history: dict[int, list[SignInRecord]] = defaultdict(list)
    rows = (
        successful.filter(time__gte=since, time__lte=until)
        .order_by("mailbox_id", "time", "event_id")
        .values_list("mailbox_id", "event_id", "time", "country", "client_app", "ip")
    )
    for mailbox_id, event_id, at, country, client_app, ip in rows:
        history[mailbox_id].append(SignInRecord(event_id, at, (country or "").upper(), client_app or "", ip))
    return history


def first_successful_sign_ins(tenant_id: int, mailbox_ids: list[int]) -> dict[int, datetime]:
    """Each user's first successful sign-in (users without one are absent), by :func:`.common.first_times`
    (the index probe reads from the user's oldest sign-in to the first success)."""
    if not mailbox_ids:
        return {}
    successful = SignIn.objects.filter(tenant_id=tenant_id, result=SignIn.Result.SUCCESS)
    return first_times(successful, "mailbox_id", mailbox_ids)


def _near_span(ahead: timedelta, reach: timedelta) -> timedelta:
    """How far before the batch the first read goes: the travel horizon (the differential test widens it to
    ``reach``, which is reading the whole look-back for everyone, the detector as it was)."""
    return ahead


def detect(policy: AlertPolicy, mailboxes: list[Mailbox], start: datetime, end: datetime) -> list[Detection]:
    """The three rules for the users of a batch, reading their sign-ins from the travel horizon before the
    range on (not the whole look-back): see :func:`_hits_of_batch`."""
    if not mailboxes:
        return []
    prefetch_related_objects([policy], "overrides")
    thresholds = {m.pk: policy.thresholds_for(m.address, end) for m in mailboxes}
    hits = _hits_of_batch(policy.tenant_id, thresholds, start, end)
    detections = []
    for mailbox in mailboxes:
        evidence: dict[str, Evidence] = {}
        reasons: list[dict] = []
        for reason, involved in _findings(hits.get(mailbox.pk, []), thresholds[mailbox.pk]):
            reasons.append(reason)
            for item in involved:
                evidence.setdefault(item.event_id, item.evidence())
        if evidence:
            detections.append(with_reasons(mailbox.pk, evidence.values(), reasons))
    return detections


def _hits_of_batch(
    tenant_id: int, thresholds: dict[int, dict[str, int]], start: datetime, end: datetime
) -> dict[int, list[SignInHit]]:
    """Per user, :func:`sign_in_hits` as over the whole look-back, from a read of the travel horizon only.

    The near read holds every sign-in of the range and every sign-in a travel pair of the range can involve
    (two sign-ins further apart than the horizon are never impossible travel), so legacy protocols and the
    travel pairs come out as from the whole look-back, and an infrequent country only ever more often (the
    near read sees less of the look-back). So: a user with a travel hit is read again over the look-back
    (its blame counts countries over the look-back) and evaluated as before; for the others, each
    infrequent-country hit whose look-back reaches past the near read is kept only if the user's newest
    sign-in of that country before the near read is older than the look-back (one grouped query over the
    users that have such hits). Results are those of the whole look-back read (``test_sign_in_baseline.py``).
    """
    ahead = max(_travel_horizon(t["max_speed_kmh"]) for t in thresholds.values())
    reach = max(ahead, *(timedelta(days=t["lookback_days"]) for t in thresholds.values()))
    near_from = start - _near_span(ahead, reach)
    successful = successful_sign_ins(tenant_id, list(thresholds))
    near = sign_in_history(successful, near_from, end + ahead)
    first_seen = first_successful_sign_ins(tenant_id, list(near))
    hits: dict[int, list[SignInHit]] = {}
    travellers: list[int] = []
    unsure: dict[int, list[SignInHit]] = {}  # infrequent-country hits the near read cannot settle
    for mailbox_id, sign_ins in near.items():
        found = list(sign_in_hits(sign_ins, thresholds[mailbox_id], first_seen.get(mailbox_id), start, end))
        if any(hit.rule == IMPOSSIBLE_TRAVEL for hit in found):
            travellers.append(mailbox_id)
            continue
        hits[mailbox_id] = found
        lookback = timedelta(days=thresholds[mailbox_id]["lookback_days"])
        for hit in found:
            if hit.rule == INFREQUENT_COUNTRY and hit.sign_in.at - lookback < near_from:
                unsure.setdefault(mailbox_id, []).append(hit)
    if unsure:
        last_seen = _last_seen_before(successful, unsure, start - reach, near_from)
        for mailbox_id, doubtful in unsure.items():
            lookback = timedelta(days=thresholds[mailbox_id]["lookback_days"])
            seen = {
                id(hit)
                for hit in doubtful
                if (last := last_seen.get((mailbox_id, hit.sign_in.country)))
                and last >= hit.sign_in.at - lookback
            }
            hits[mailbox_id] = [hit for hit in hits[mailbox_id] if id(hit) not in seen]
    if travellers:
        travelled = successful.filter(AnyOf("mailbox_id", travellers))
        history = sign_in_history(travelled, start - reach, end + ahead)
        for mailbox_id in travellers:
            hits[mailbox_id] = list(
                sign_in_hits(
                    history[mailbox_id], thresholds[mailbox_id], first_seen.get(mailbox_id), start, end
                )
            )
    return hits


def _last_seen_before(
    successful: QuerySet[SignIn], hits: dict[int, list[SignInHit]], since: datetime, until: datetime
) -> dict[tuple[int, str], datetime]:
    """(user, country) -> the user's newest successful sign-in from the country in ``[since, until)``, for
    the countries of ``hits`` (one grouped query)."""
    countries = {hit.sign_in.country for found in hits.values() for hit in found}
    rows = (
        successful.filter(AnyOf("mailbox_id", hits), time__gte=since, time__lt=until)
        .annotate(upper_country=Upper("country"))
        .filter(upper_country__in=countries)
        .values("mailbox_id", "upper_country")
        .annotate(last=Max("time"))
        .values_list("mailbox_id", "upper_country", "last")
    )
    return {(mailbox_id, country): last for mailbox_id, country, last in rows}


def sign_in_hits(
    sign_ins: list[SignInRecord],
    limits: dict[str, int],
    first_seen: datetime | None,
    start: datetime,
    end: datetime,
) -> Iterator[SignInHit]:
    """The one implementation of the three sign-in rules (module docstring), over one user's successful
    sign-ins in time order, for the sign-ins in ``[start, end]``; the alert and the investigation both call it
    so they cannot disagree. ``sign_ins`` must reach back ``lookback_days`` before ``start`` (and, for travel,
    the travel horizon after ``end``)."""
    lookback = timedelta(days=limits["lookback_days"])
    learning = timedelta(days=limits["learning_days"])
    max_speed = limits["max_speed_kmh"]
    in_range = [s for s in sign_ins if start <= s.at <= end]

    # Infrequent country: the countries seen in the lookback before each sign-in, with two pointers.
    seen: dict[str, int] = defaultdict(int)
    left = right = 0
    for current in in_range:
        while right < len(sign_ins) and sign_ins[right].at < current.at:
            seen[sign_ins[right].country] += 1
            right += 1
        while left < right and sign_ins[left].at < current.at - lookback:
            seen[sign_ins[left].country] -= 1
            left += 1
        learned = first_seen is not None and first_seen <= current.at - learning
        if current.country and learned and seen[current.country] <= 0:
            yield SignInHit(INFREQUENT_COUNTRY, current)
        if current.client_app in SignIn.LEGACY_CLIENT_APPS:
            yield SignInHit(LEGACY_PROTOCOL, current)

    # Impossible travel: consecutive sign-ins with a country, at least one of the pair in the range.
    located = [s for s in sign_ins if s.country]
    for before, after in zip(located, located[1:], strict=False):
        if before.country == after.country or not (start <= before.at <= end or start <= after.at <= end):
            continue
        distance = country_distance_km(before.country, after.country)
        if distance is None:
            continue
        hours = (after.at - before.at).total_seconds() / 3600
        if hours > 0 and distance / hours <= max_speed:
            continue
        usual = Counter(s.country for s in located if after.at - lookback <= s.at <= after.at)
        suspect = after if usual[after.country] <= usual[before.country] else before
        yield SignInHit(IMPOSSIBLE_TRAVEL, suspect, (before, after), distance, hours)


def _findings(hits: list[SignInHit], limits: dict[str, int]) -> Iterator[tuple[dict, list[SignInRecord]]]:
    """Yield ``(reason, sign-ins involved)`` for one user's hits, in the order :func:`sign_in_hits` found
    them."""
    for hit in hits:
        current = hit.sign_in
        if hit.rule == INFREQUENT_COUNTRY:
            reason = {
                "rule": INFREQUENT_COUNTRY,
                "sign_in": current.event_id,
                "country": current.country,
                "at": current.at.isoformat(),
                "lookback_days": limits["lookback_days"],
            }
        elif hit.rule == LEGACY_PROTOCOL:
            reason = {
                "rule": LEGACY_PROTOCOL,
                "sign_in": current.event_id,
                "client_app": current.client_app,
                "at": current.at.isoformat(),
            }
        else:
            assert hit.pair is not None  # an impossible-travel hit always carries its pair
            (before, after), hours, distance = hit.pair, hit.hours or 0.0, hit.distance_km or 0.0
            reason = {
                "rule": IMPOSSIBLE_TRAVEL,
                "sign_ins": [before.event_id, after.event_id],
                "blamed": current.event_id,
                "from": before.country,
                "to": after.country,
                "distance_km": round(distance),
                "hours": round(hours, 2),
                "speed_kmh": round(distance / hours) if hours > 0 else None,
                "max_speed_kmh": limits["max_speed_kmh"],
                "at": current.at.isoformat(),
            }
        yield reason, [current]
