"""Analyzer 8, sign-ins: new countries, impossible travel, legacy protocols, failures followed by success.

Rules, over the user's sign-ins of the last 7 days (history read back ``lookback_days`` further), with the
thresholds of the tenant's sign-in policy for this user (the alert and the investigation agree):

- **new country** (15 points), **impossible travel** (20) and **legacy protocol** (10): the sign-in policy's
  rules, from the one implementation the alert uses (``alerts.detectors.sign_in.sign_in_hits``), so an alert
  and its investigation blame the same sign-in (of an impossible pair, the one from the less usual country);
- **failures then success** (10): a successful sign-in after 2 or more failed ones within the hour before it
  (one mistyped password is everyday life; a run of them from where the user then gets in is not).

One finding per source IP that tripped a rule, with every reason: *malicious* when an IP combines a new
country with another rule (the classic pattern of a stolen password used from abroad), else *suspicious*.
The IP's points are capped at 35. No action is proposed here (the verdict proposes the account actions).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from alerts.detectors.sign_in import (
    INFREQUENT_COUNTRY,
    LEGACY_PROTOCOL,
    SignInRecord,
    sign_in_hits,
)
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
    history = _history(ctx, lookback)
    first_success = (
        SignIn.objects.filter(mailbox=ctx.mailbox, result=SignIn.Result.SUCCESS)
        .order_by("time")
        .values_list("time", flat=True)
        .first()
    )
    recent = [s for s in history if s.at >= ctx.since]
    successes = [s for s in history if s.success]
    hits: dict[str, list[tuple[str, str, _SignIn]]] = defaultdict(list)
    learned_any = first_success is not None and first_success <= ctx.until - learning

    # New country, legacy protocol, impossible travel: the sign-in policy's own rules (one implementation,
    # alerts.detectors.sign_in), so the investigation blames exactly what the alert blamed.
    _policy_hits(ctx, successes, limits, first_success, hits)
    # Failures followed by success: failed sign-ins of the user in the hour before a successful one.
    _failure_hits(ctx, history, successes, hits)
    findings = [_ip_finding(ctx, name, ip, hits[ip]) for ip in sorted(hits)]
    recent_successes = sum(1 for s in recent if s.success)
    found = (
        f"{len(findings)} suspicious IP{'s' if len(findings) != 1 else ''}" if findings else "nothing unusual"
    )
    note = "" if learned_any or not recent_successes else " (learning period: new countries not judged)"
    summary = (
        f"{recent_successes} successful and {len(recent) - recent_successes} failed sign-ins in 7 days from "
        f"{len({s.ip for s in recent})} IPs; {found}{note}"
    )
    return AnalyzerResult(summary, findings)


def _history(ctx: Context, lookback: timedelta) -> list[_SignIn]:
    """The user's sign-ins from ``lookback`` before the look-back to its end, in time order."""
    rows = (
        SignIn.objects.filter(mailbox=ctx.mailbox, time__gte=ctx.since - lookback, time__lte=ctx.until)
        .order_by("time", "event_id")
        .values_list("event_id", "time", "ip", "country", "client_app", "result")
    )
    return [
        _SignIn(event_id, at, ip, (country or "").upper(), client_app or "", result == SignIn.Result.SUCCESS)
        for event_id, at, ip, country, client_app, result in rows
    ]


def _policy_hits(
    ctx: Context,
    successes: list[_SignIn],
    limits: dict[str, int],
    first_success: datetime | None,
    hits: dict[str, list[tuple[str, str, _SignIn]]],
) -> None:
    """Add the sign-in policy's hits (new country, legacy protocol, impossible travel) to ``hits`` by IP."""
    records = [SignInRecord(s.event_id, s.at, s.country, s.client_app, s.ip) for s in successes]
    by_id = {s.event_id: s for s in successes}
    for hit in sign_in_hits(records, limits, first_success, ctx.since, ctx.until):
        s = by_id[hit.sign_in.event_id]
        if hit.rule == INFREQUENT_COUNTRY:
            hits[s.ip].append((NEW_COUNTRY, f"Signed in from {s.country}, a country new for the user", s))
        elif hit.rule == LEGACY_PROTOCOL:
            hits[s.ip].append((LEGACY, f"Signed in over legacy {s.client_app.upper()} (no modern auth)", s))
        else:
            other, hours, distance = hit.other, hit.hours or 0.0, hit.distance_km or 0.0
            assert hit.pair is not None and other is not None  # an impossible-travel hit carries its pair
            when = "after" if hit.pair[1] is hit.sign_in else "before"
            speed = f"{distance / hours:,.0f} km/h" if hours > 0 else "at the same moment"
            hits[s.ip].append(
                (
                    TRAVEL,
                    f"Signed in from {s.country} {hours:.1f} h {when} a sign-in from {other.country} "
                    f"({distance:,.0f} km: {speed})",
                    s,
                )
            )


def _failure_hits(
    ctx: Context,
    history: list[_SignIn],
    successes: list[_SignIn],
    hits: dict[str, list[tuple[str, str, _SignIn]]],
) -> None:
    """Add each successful sign-in of the look-back that followed a burst of failures in the hour before."""
    failures = [s.at for s in history if not s.success]  # in time order
    for s in successes:
        if s.at < ctx.since:
            continue
        burst = bisect_left(failures, s.at) - bisect_left(failures, s.at - FAILURE_WINDOW)
        if burst >= FAILURE_BURST:
            hits[s.ip].append((FAILURES, f"Signed in after {burst} failed sign-ins in the hour before", s))


def _ip_finding(ctx: Context, name: str, ip: str, items: list[tuple[str, str, _SignIn]]) -> Finding:
    """One IP's finding: its reasons, its points (each rule once, capped at 35), its verdict."""
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
        Finding.Verdict.MALICIOUS if NEW_COUNTRY in rules and len(rules) > 1 else Finding.Verdict.SUSPICIOUS
    )
    sign_in_ids = sorted({s.event_id for _, _, s in items})
    return ctx.record(
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


def _limits(ctx: Context) -> dict[str, int]:
    defaults = {key: t.default for key, t in DEFAULTS_BY_KIND[AlertPolicy.Kind.SIGN_IN].thresholds.items()}
    policy = AlertPolicy.objects.filter(tenant=ctx.tenant, kind=AlertPolicy.Kind.SIGN_IN).first()
    if policy is None:
        return defaults
    return {**defaults, **policy.thresholds_for(ctx.mailbox.address, ctx.until)}
