"""Analyzer: lookalike domains (issue 21) — links, recipients and forwarding targets on a domain that imitates
one of the tenant's accepted domains (``alerts.detectors.lookalike``).

Rule: over the user's sent mail of the last 7 days, every lookalike domain in a message's URLs or its external
recipients' domains, and over the mailbox's present forwarding and enabled inbox rules, every lookalike
forwarding / redirect target. One *malicious* finding per lookalike domain, whose risk point names it ("link
on a lookalike of contoso.example": 25 points for a link or a forwarding target, 15 for recipients only).
Nothing is proposed here: the forwarding, rule and cluster analyzers propose the clean-up.
"""

from __future__ import annotations

from collections import defaultdict

from alerts.detectors.lookalike import Lookalike, LookalikeMatcher
from mailboxes.addresses import addresses_in, rule_forward_targets
from mailboxes.models import InboxRule, MailboxForwarding

from ..models import Finding
from .base import AnalyzerResult, Context, Risk

NAME = "lookalikes"
LINK, RECIPIENT, FORWARD = "link", "recipients", "forwarding"
_POINTS = {LINK: 25, FORWARD: 25, RECIPIENT: 15}
_WHAT = {LINK: "link on", FORWARD: "forwarding to", RECIPIENT: "recipients at"}


def lookalikes(ctx: Context) -> AnalyzerResult:
    matcher = LookalikeMatcher(ctx.accepted_domains)
    seen: dict[str, tuple[Lookalike, dict[str, int]]] = {}

    def note(found: list[Lookalike], how: str) -> None:
        for item in found:
            seen.setdefault(item.domain, (item, defaultdict(int)))[1][how] += 1

    for message in ctx.sent_between(ctx.since):
        note(matcher.in_urls(message.urls), LINK)
        note(matcher.in_domains(message.external_domains), RECIPIENT)
    forwarding = MailboxForwarding.objects.filter(mailbox=ctx.mailbox).first()
    targets = list(addresses_in(forwarding.forward_to)) if forwarding and forwarding.forward_to else []
    for rule in InboxRule.objects.present().filter(mailbox=ctx.mailbox):
        state = rule.state()
        if state.get("enabled", True) is not False:
            targets += [
                a for found in rule_forward_targets(state.get("actions") or {}).values() for a in found
            ]
    note(matcher.in_domains(a.rpartition("@")[2] for a in targets), FORWARD)

    findings = []
    for domain, (item, counts) in sorted(seen.items()):
        kinds = [k for k in (LINK, FORWARD, RECIPIENT) if counts.get(k)]
        headline = f"{_WHAT[kinds[0]]} a lookalike of {item.imitates}"
        reason = f"{headline.capitalize()}: {domain} ({item.how})"
        entity = Finding.EntityType.FORWARDING if kinds[0] == FORWARD else Finding.EntityType.SENDING
        findings.append(
            ctx.record(
                NAME,
                entity,
                f"lookalike:{domain}",
                label=f"Lookalike domain {domain}",
                verdict=Finding.Verdict.MALICIOUS,
                reasons=[reason, *(f"{counts[k]} {_WHAT[k]} it" for k in kinds if k != FORWARD)],
                risk=[Risk(_POINTS[kinds[0]], reason)],
                data={"lookalike": item.as_dict(), "seen_as": {k: counts[k] for k in kinds}},
            )
        )
    summary = (
        f"{len(findings)} lookalike domain{'s' if len(findings) != 1 else ''}: {', '.join(sorted(seen))}"
        if findings
        else "No link, recipient or forwarding target on a lookalike of the organisation's domains"
    )
    return AnalyzerResult(summary[:500], findings)
