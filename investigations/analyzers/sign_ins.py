"""Analyzer 8, sign-ins: new countries, impossible travel, legacy protocols, failures followed by success.

Rules, over the user's sign-ins of the last 7 days (history read back ``lookback_days`` further), with the
thresholds of the tenant's sign-in policy for this user (the alert and the investigation agree):

- **new country** (15 points): a successful sign-in from a country with no successful sign-in of the user in
  the ``lookback_days`` before it; only once the user has ``learning_days`` of sign-in history before it;
- **impossible travel** (20): two consecutive successful sign-ins in different countries whose centroids are
  further apart than ``max_speed_kmh`` allows for the time between them, charged to the one from the country
  the user signs in from less often;
- **legacy protocol** (10): a successful sign-in over IMAP, POP or SMTP AUTH (no modern auth, no MFA);
- **failures then success** (10): a successful sign-in after 2 or more failed ones within the hour before it
  (one mistyped password is everyday life; a run of them from where the user then gets in is not).

One finding per source IP that tripped a rule, with every reason: *malicious* when an IP combines a new
country with another rule (the classic pattern of a stolen password used from abroad), else *suspicious*.
The IP's points are capped at 35. No action is proposed here (the verdict proposes the account actions).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from alerts.detectors.geo import country_distance_km
from alerts.models import AlertPolicy
from alerts.policies import DEFAULTS_BY_KIND
from mailboxes.models import SignIn

from ..models import Finding
from .base import AnalyzerResult, Context, Risk

FAILURE_BURST = 2
FAILURE_WINDOW = timedelta(hours=1)
IP_POINT_CAP = 35
NEW_COUNTRY, TRAVEL, LEGACY, FAILURES = (
    "new_country",
    "impossible_travel",
    "legacy_protocol",
    "failures_then_success",
)
POINTS = {NEW_COUNTRY: 15, TRAVEL: 20, LEGACY: 10, FAILURES: 10}


@dataclass(frozen=True)
class _SignIn:
    event_id: str
    at: datetime
    ip: str
    country: str
    client_app: str
    success: bool


def sign_ins(ctx: Context) -> AnalyzerResult:
    name = "sign_ins"
    limits = _limits(ctx)
    lookback = timedelta(days=limits["lookback_days"])
    learning = timedelta(days=limits["learning_days"])
    rows = (
        SignIn.objects.filter(mailbox=ctx.mailbox, time__gte=ctx.since - lookback, time__lte=ctx.until)
        .order_by("time", "event_id")
        .values_list("event_id", "time", "ip", "country", "client_app", "result")
    )
    history = [
        _SignIn(event_id, at, ip, (country or "").upper(), client_app or "", result == SignIn.Result.SUCCESS)
        for event_id, at, ip, country, client_app, result in rows
    ]
    first_success = (
        SignIn.objects.filter(mailbox=ctx.mailbox, result=SignIn.Result.SUCCESS)
        .order_by("time")
        .values_list("time", flat=True)
        .first()
    )
    recent = [s for s in history if s.at >= ctx.since]
    successes = [s for s in history if s.success]
    hits: dict[str, list[tuple[str, str, _SignIn]]] = defaultdict(list)
    learned_any = False

    # New country: none of the user's successful sign-ins in the lookback before it came from there (two
    # pointers over the time-ordered successes), once the user has ``learning_days`` of history before it.
    seen: Counter[str] = Counter()
    left = 0
    for right, s in enumerate(successes):
        while left < right and successes[left].at < s.at - lookback:
            seen[successes[left].country] -= 1
            left += 1
        if s.at >= ctx.since:
            learned = first_success is not None and first_success <= s.at - learning
            learned_any = learned_any or learned
            if learned and s.country and seen[s.country] <= 0:
                hits[s.ip].append((NEW_COUNTRY, f"Signed in from {s.country}, a country new for the user", s))
            if s.client_app in SignIn.LEGACY_CLIENT_APPS:
                hits[s.ip].append(
                    (LEGACY, f"Signed in over legacy {s.client_app.upper()} (no modern auth)", s)
                )
        seen[s.country] += 1

    # Impossible travel: consecutive successful sign-ins, the later one in the look-back. The pair is
    # charged to the sign-in from the user's less usual country (the other is most likely the user).
    usual = Counter(s.country for s in successes)
    for previous, s in pairwise(successes):
        if s.at < ctx.since or not previous.country or not s.country or previous.country == s.country:
            continue
        distance = country_distance_km(previous.country, s.country)
        hours = max((s.at - previous.at).total_seconds() / 3600, 1 / 60)
        if distance is None or distance / hours <= limits["max_speed_kmh"]:
            continue
        suspect, other = (s, previous) if usual[s.country] <= usual[previous.country] else (previous, s)
        when = "after" if suspect is s else "before"
        hits[suspect.ip].append(
            (
                TRAVEL,
                f"Signed in from {suspect.country} {hours:.1f} h {when} a sign-in from {other.country} "
                f"({distance:,.0f} km: {distance / hours:,.0f} km/h)",
                suspect,
            )
        )

    # Failures followed by success: failed sign-ins of the user in the hour before a successful one.
    failures = [s.at for s in history if not s.success]  # in time order
    for s in successes:
        if s.at < ctx.since:
            continue
        burst = bisect_left(failures, s.at) - bisect_left(failures, s.at - FAILURE_WINDOW)
        if burst >= FAILURE_BURST:
            hits[s.ip].append((FAILURES, f"Signed in after {burst} failed sign-ins in the hour before", s))

    findings = []
    for ip in sorted(hits):
        items = hits[ip]
        rules = {rule for rule, _, _ in items}
        reasons: list[str] = []
        risk: list[Risk] = []
        counted: set[str] = set()
        budget = IP_POINT_CAP
        for rule, reason, _ in items:
            if reason not in reasons:
                reasons.append(reason)
            if rule in counted:
                continue  # each rule counts once per IP, however many sign-ins tripped it
            counted.add(rule)
            points = min(POINTS[rule], budget)
            if points > 0:
                budget -= points
                risk.append(Risk(points, f"{ip}: {reason}"))
        countries = sorted({s.country for _, _, s in items if s.country})
        verdict = (
            Finding.Verdict.MALICIOUS
            if NEW_COUNTRY in rules and len(rules) > 1
            else Finding.Verdict.SUSPICIOUS
        )
        sign_in_ids = sorted({s.event_id for _, _, s in items})
        findings.append(
            ctx.record(
                name,
                Finding.EntityType.SIGN_IN,
                f"ip:{ip}",
                label=f"{ip} ({', '.join(countries) or 'unknown country'})",
                verdict=verdict,
                reasons=reasons,
                risk=risk,
                data={
                    "ip": ip,
                    "countries": countries,
                    "rules": sorted(rules),
                    "sign_in_ids": sign_in_ids[:50],
                    "first_at": min(s.at for _, _, s in items).isoformat(),
                    "last_at": max(s.at for _, _, s in items).isoformat(),
                },
            )
        )
    recent_successes = sum(1 for s in recent if s.success)
    found = (
        f"{len(findings)} suspicious IP{'s' if len(findings) != 1 else ''}" if findings else "nothing unusual"
    )
    learning = "" if learned_any or not recent_successes else " (learning period: new countries not judged)"
    summary = (
        f"{recent_successes} successful and {len(recent) - recent_successes} failed sign-ins in 7 days from "
        f"{len({s.ip for s in recent})} IPs; {found}{learning}"
    )
    return AnalyzerResult(summary, findings)


def _limits(ctx: Context) -> dict[str, int]:
    defaults = {key: t.default for key, t in DEFAULTS_BY_KIND[AlertPolicy.Kind.SIGN_IN].thresholds.items()}
    policy = AlertPolicy.objects.filter(tenant=ctx.tenant, kind=AlertPolicy.Kind.SIGN_IN).first()
    if policy is None:
        return defaults
    return {**defaults, **policy.thresholds_for(ctx.mailbox.address, ctx.until)}
