"""Analyzer 9, the verdict: compromised / suspicious / clean, with a risk score whose every point names its
reason.

Rule: the score adds up the risk points of every finding of the investigation (this run's and what earlier
runs found, so a re-run that cannot see an old entity again does not forget it), each analyzer capped so that
one kind of evidence cannot decide alone (alerts 30, sending anomaly 25, sent malware 45, clusters 20,
forwarding 35, inbox rules 40, delegations 35, sign-ins 35, lookalike domains 35), the total capped at 100.
``risk_reasons`` lists ``{points, reason, analyzer}`` and sums exactly to ``risk_score`` (an item a cap cut
short shows the points it kept). Verdict: *compromised* from 60 points; *suspicious* when any finding is
malicious or suspicious; else *clean*. The verdict is also a finding on the mailbox (malicious / suspicious /
clean).

Proposals when compromised (each answering the mailbox finding): ``force_password_reset``,
``revoke_sessions``, ``disable_account`` (offered; the analyst decides), and ``block_sender`` unless the user
is already blocked until released — a restriction that lapses at midnight does not keep a compromised account
from sending again, so it does not stand in for the block.
"""

from __future__ import annotations

from django.db.models import Q

from restricted_users.models import Restriction

from ..models import Finding, Investigation, RemediationAction
from .base import AnalyzerResult, Context

NAME = "verdict"
COMPROMISED_AT = 60
MAX_SCORE = 100
ANALYZER_CAPS: dict[str, int] = {
    "correlated_alerts": 30,
    "sending_anomaly": 25,
    "sent_malware": 45,
    "mail_clusters": 20,
    "forwarding": 35,
    "inbox_rules": 40,
    "delegations": 35,
    "sign_ins": 35,
    "lookalikes": 35,
}
_ORDER = {name: i for i, name in enumerate(ANALYZER_CAPS)}


def score(findings: list[tuple[str, dict]]) -> tuple[int, list[dict]]:
    """``(score, reasons)`` from ``(analyzer, finding data)`` pairs, by the caps in the module docstring."""
    items: list[tuple[int, int, str, str]] = []
    for analyzer, data in findings:
        for risk in (data or {}).get("risk", []):
            points = int(risk.get("points", 0))
            if points > 0 and analyzer in ANALYZER_CAPS:
                items.append((_ORDER[analyzer], -points, risk.get("reason", ""), analyzer))
    items.sort()
    used: dict[str, int] = {}
    total = 0
    reasons = []
    for _, negative, reason, analyzer in items:
        room = min(ANALYZER_CAPS[analyzer] - used.get(analyzer, 0), MAX_SCORE - total)
        points = min(-negative, room)
        if points <= 0:
            continue
        used[analyzer] = used.get(analyzer, 0) + points
        total += points
        reasons.append({"points": points, "reason": reason, "analyzer": analyzer})
    return total, reasons


def verdict(ctx: Context) -> AnalyzerResult:
    investigation = ctx.investigation
    rows = list(
        investigation.findings.exclude(analyzer=NAME).values_list(
            "analyzer", "verdict", "data", "entity_label"
        )
    )
    total, reasons = score([(analyzer, data) for analyzer, _, data, _ in rows])
    threats = [row for row in rows if row[1] != Finding.Verdict.CLEAN]
    if total >= COMPROMISED_AT:
        outcome = Investigation.Verdict.COMPROMISED
    elif threats:
        outcome = Investigation.Verdict.SUSPICIOUS
    else:
        outcome = Investigation.Verdict.CLEAN
    finding_verdict = {
        Investigation.Verdict.COMPROMISED: Finding.Verdict.MALICIOUS,
        Investigation.Verdict.SUSPICIOUS: Finding.Verdict.SUSPICIOUS,
        Investigation.Verdict.CLEAN: Finding.Verdict.CLEAN,
    }[outcome]
    headline = {
        Investigation.Verdict.COMPROMISED: f"Account compromised: risk {total}/100",
        Investigation.Verdict.SUSPICIOUS: (
            f"Suspicious activity: risk {total}/100 (compromised from {COMPROMISED_AT})"
        ),
        Investigation.Verdict.CLEAN: "No malicious or suspicious finding",
    }[outcome]
    mailbox = ctx.mailbox
    finding = ctx.record(
        NAME,
        Finding.EntityType.MAILBOX,
        mailbox.address,
        label=mailbox.display_name and f"{mailbox.display_name} <{mailbox.address}>" or mailbox.address,
        verdict=finding_verdict,
        reasons=[headline, *(f"+{r['points']} {r['reason']}" for r in reasons)],
        data={"verdict": outcome, "risk_score": total, "threats": len(threats)},
    )
    actions = []
    if outcome == Investigation.Verdict.COMPROMISED:
        target = {"mailbox_id": mailbox.pk, "address": mailbox.address}
        key = f"mailbox:{mailbox.pk}"
        proposals = [
            (RemediationAction.Type.FORCE_PASSWORD_RESET, f"Force a password reset of {mailbox.address}"),
            (RemediationAction.Type.REVOKE_SESSIONS, f"Revoke the sign-in sessions of {mailbox.address}"),
            (RemediationAction.Type.DISABLE_ACCOUNT, f"Disable the account {mailbox.address}"),
        ]
        if not _blocked_until_released(ctx):
            proposals.append(
                (RemediationAction.Type.BLOCK_SENDER, f"Block {mailbox.address} from sending until released")
            )
        for action_type, label in proposals:
            action = ctx.propose(action_type, key, target=target, label=label, finding=finding)
            if action is not None:
                actions.append(action)
    # Set last: if anything above fails, the savepoint rolls back and the previous verdict stands.
    investigation.verdict = outcome
    investigation.risk_score = total
    investigation.risk_reasons = reasons
    summary = (
        f"{outcome.label}: risk {total}/100 from {len(reasons)} reason{'s' if len(reasons) != 1 else ''}"
    )
    return AnalyzerResult(summary, [finding], actions)


def _blocked_until_released(ctx: Context) -> bool:
    return (
        Restriction.objects.active(ctx.until)
        .filter(mailbox=ctx.mailbox)
        .filter(Q(expires_at__isnull=True))
        .exists()
    )
