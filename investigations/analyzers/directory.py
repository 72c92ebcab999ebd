"""Analyzers 5–7 over the user's mailbox configuration: forwarding, inbox rules, delegations.

Each reads the current state and the changes of the last 7 days. What is there now and harmful gets a finding
and a proposal to undo it; what was there during the look-back but is gone gets a finding (it happened) and no
proposal (there is nothing left to undo). The rule and address helpers are the detectors' own
(``alerts.detectors.common``), so an alert and its investigation judge a rule the same way.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q

from alerts.detectors.common import finance_keywords, manipulation_actions
from mailboxes.addresses import addresses_in, is_external, rule_forward_targets
from mailboxes.models import Delegation, DirectoryChange, InboxRule, MailboxForwarding

from ..models import Finding, RemediationAction
from .base import AnalyzerResult, Context, Risk

# ---------------------------------------------------------------------------------------------- 5. forwarding


def forwarding(ctx: Context) -> AnalyzerResult:
    """Forwarding: external SMTP forwarding on the mailbox.

    Rule: forwarding now set to an address outside the accepted domains is *malicious* when it was set in
    the look-back (35 points) and *suspicious* when older (20 points); either way ``turn_off_forwarding`` is
    proposed. External forwarding set during the look-back but turned off or changed since is *suspicious*
    history (10 points, nothing to propose). Forwarding inside the tenant is not a finding.
    """
    name = "forwarding"
    accepted = ctx.accepted_domains
    findings, actions = [], []
    current = MailboxForwarding.objects.filter(mailbox=ctx.mailbox).first()
    now_to = current.forward_to if current is not None and current.forward_to else None
    if current is not None and now_to and is_external(now_to, accepted):
        finding, action = _present_forwarding(ctx, name, current, now_to)
        findings.append(finding)
        if action is not None:
            actions.append(action)

    past = _past_forwarding(ctx, now_to)
    for address, seen in past.items():
        reason = (
            f"Forwarded mail to {address}, outside the organisation, on {seen[0][0]:%Y-%m-%d %H:%M} UTC; "
            "off now"
        )
        findings.append(
            ctx.record(
                name,
                Finding.EntityType.FORWARDING,
                address,
                label=f"Forwarding to {address} (removed)",
                verdict=Finding.Verdict.SUSPICIOUS,
                reasons=[reason],
                risk=[Risk(10, reason)],
                data={"forward_to": address, "present": False, "event_ids": [e for _, e in seen if e]},
            )
        )
    if now_to:
        summary = f"Forwarding to {now_to} ({'external' if is_external(now_to, accepted) else 'internal'})"
    else:
        summary = "No forwarding set"
    if past:
        summary += (
            f"; {len(past)} external forwarding address{'es' if len(past) != 1 else ''} in 7 days' history"
        )
    return AnalyzerResult(summary, findings, actions)


# ------------------------------------------------------------------------------------------- 6. inbox rules


def inbox_rules(ctx: Context) -> AnalyzerResult:
    """Inbox rules: rules that forward / redirect outside, delete, mark read, or hide mail in a rarely used
    folder (``alerts.policies.RARE_FOLDERS``), weighed up when they look for finance words (FINANCE_WORDS).

    Rule, per rule present now or removed in the look-back:
    - forwarding / redirecting outside the tenant: *malicious* if created or changed in the look-back (35
      points), else *suspicious* (20);
    - hiding mail (delete, mark read, rare folder) on finance words: *malicious* if recent (30), else
      *suspicious* (15); hiding mail without finance words: *suspicious* (15 recent, 5 older);
    - anything else is not a finding. A disabled rule keeps its verdict (it was set up) with half the points.
    ``remove_inbox_rule`` is proposed for every malicious or suspicious rule still present.
    """
    name = "inbox_rules"
    accepted = ctx.accepted_domains
    rules = list(
        InboxRule.objects.filter(mailbox=ctx.mailbox).filter(
            Q(removed_at__isnull=True) | Q(removed_at__gte=ctx.since)
        )
    )
    findings, actions = [], []
    flagged = 0
    for rule in sorted(rules, key=lambda r: r.rule_id):
        actions_ = rule.actions or {}
        recent = rule.changed_at >= ctx.since or (
            rule.created_at is not None and rule.created_at >= ctx.since
        )
        label = rule.name or rule.rule_id
        risk, malicious, outside = _rule_risks(actions_, rule.conditions or {}, accepted, recent, label)
        if not risk:
            continue
        flagged += 1
        if not rule.enabled:
            risk = [Risk(max(1, r.points // 2), f"{r.reason} (disabled)") for r in risk]
        reasons = [r.reason for r in risk]
        when = rule.created_at or rule.changed_at
        reasons.append(
            f"{'Created' if rule.created_at else 'Changed'} {when:%Y-%m-%d %H:%M} UTC"
            + (f"; removed {rule.removed_at:%Y-%m-%d %H:%M} UTC" if rule.removed_at else "")
        )
        finding, action = _rule_finding(ctx, name, rule, label, risk, reasons, malicious, outside)
        findings.append(finding)
        if action is not None:
            actions.append(action)
    present = sum(1 for r in rules if r.removed_at is None)
    summary = (
        f"{present} rule{'s' if present != 1 else ''} present, {len(rules) - present} removed in 7 days; "
    )
    summary += f"{flagged} malicious or suspicious" if flagged else "none suspicious"
    return AnalyzerResult(summary, findings, actions)


def _present_forwarding(
    ctx: Context, name: str, current: MailboxForwarding, now_to: str
) -> tuple[Finding, RemediationAction | None]:
    """The finding on external forwarding set now, and the proposal to turn it off."""
    recent = current.changed_at >= ctx.since
    verdict = Finding.Verdict.MALICIOUS if recent else Finding.Verdict.SUSPICIOUS
    reason = (
        f"Forwards all mail to {now_to}, outside the organisation"
        f"{', keeping no copy' if not current.keep_copy else ''}; "
        f"set {current.changed_at:%Y-%m-%d %H:%M} UTC"
    )
    finding = ctx.record(
        name,
        Finding.EntityType.FORWARDING,
        now_to,
        label=f"Forwarding to {now_to}",
        verdict=verdict,
        reasons=[reason],
        risk=[Risk(35 if recent else 20, reason)],
        data={
            "forward_to": now_to,
            "keep_copy": current.keep_copy,
            "changed_at": current.changed_at.isoformat(),
            "present": True,
        },
    )
    action = ctx.propose(
        RemediationAction.Type.TURN_OFF_FORWARDING,
        f"forwarding:{now_to}",
        target={"mailbox_id": ctx.mailbox.pk, "forward_to": now_to, "keep_copy": current.keep_copy},
        label=f"Turn off forwarding of {ctx.mailbox.address} to {now_to}",
        finding=finding,
        present_now=True,
    )
    return finding, action


def _past_forwarding(ctx: Context, now_to: str | None) -> dict[str, list[tuple[datetime, str]]]:
    """External addresses mail was forwarded to during the look-back and is not now, with when and by which
    events."""
    history = (
        DirectoryChange.objects.filter(
            mailbox=ctx.mailbox, kind=DirectoryChange.Kind.FORWARDING, at__gte=ctx.since, at__lte=ctx.until
        )
        .order_by("at", "id")
        .values_list("at", "state", "event_id")
    )
    past: dict[str, list[tuple[datetime, str]]] = {}
    for at, state, event_id in history:
        for address in addresses_in((state or {}).get("forward_to")):
            if is_external(address, ctx.accepted_domains) and address != now_to:
                past.setdefault(address, []).append((at, event_id))
    return past


def _rule_risks(
    actions_: dict, conditions: dict, accepted: set[str], recent: bool, label: str
) -> tuple[list[Risk], bool, dict[str, list[str]]]:
    """An inbox rule's risks (forwarding outside, hiding mail), whether they make it malicious, and the
    outside addresses by action."""
    risk: list[Risk] = []
    malicious = False
    outside = {
        action: [a for a in addresses if is_external(a, accepted)]
        for action, addresses in rule_forward_targets(actions_).items()
    }
    outside = {action: addresses for action, addresses in outside.items() if addresses}
    if outside:
        targets = ", ".join(f"{action.replace('_', ' ')} {', '.join(a)}" for action, a in outside.items())
        risk.append(Risk(35 if recent else 20, f"Rule “{label}” sends mail outside: {targets}"))
        malicious = malicious or recent
    hides = manipulation_actions(actions_)
    if hides:
        words = finance_keywords(conditions)
        what = ", ".join(h.replace("_", " ") for h in hides)
        if words:
            risk.append(
                Risk(30 if recent else 15, f"Rule “{label}” hides mail ({what}) about {', '.join(words)}")
            )
            malicious = malicious or recent
        else:
            risk.append(Risk(15 if recent else 5, f"Rule “{label}” hides mail ({what})"))
    return risk, malicious, outside


def _rule_finding(
    ctx: Context,
    name: str,
    rule: InboxRule,
    label: str,
    risk: list[Risk],
    reasons: list[str],
    malicious: bool,
    outside: dict[str, list[str]],
) -> tuple[Finding, RemediationAction | None]:
    """A flagged inbox rule's finding and, while the rule is present, the proposal to remove it."""
    verdict = Finding.Verdict.MALICIOUS if malicious else Finding.Verdict.SUSPICIOUS
    finding = ctx.record(
        name,
        Finding.EntityType.INBOX_RULE,
        rule.rule_id,
        label=f"Inbox rule “{label}”" + (" (removed)" if rule.removed_at else ""),
        verdict=verdict,
        reasons=reasons,
        risk=risk,
        data={
            "rule_id": rule.rule_id,
            "name": rule.name,
            "conditions": rule.conditions,
            "actions": rule.actions,
            "enabled": rule.enabled,
            "present": rule.removed_at is None,
            "external_targets": outside,
        },
    )
    if rule.removed_at is None:
        action = ctx.propose(
            RemediationAction.Type.REMOVE_INBOX_RULE,
            f"rule:{rule.rule_id}",
            target={"mailbox_id": ctx.mailbox.pk, "rule_id": rule.rule_id, "name": rule.name},
            label=f"Remove inbox rule “{label}” of {ctx.mailbox.address}",
            finding=finding,
            present_now=True,
        )
        return finding, action
    return finding, None


# ------------------------------------------------------------------------------------------- 7. delegations

REVIEWED_ACCESS = (Delegation.Access.FULL_ACCESS, Delegation.Access.SEND_AS)


def delegations(ctx: Context) -> AnalyzerResult:
    """Delegations: full access or send-as granted in the look-back.

    Rule: such a grant to an address outside the accepted domains is *malicious* (35 points), to a colleague
    *suspicious* (20 points); ``remove_delegation`` is proposed while it is present. A grant made and removed
    within the look-back is *suspicious* history (10 points). Older grants and send-on-behalf are not
    findings.
    """
    name = "delegations"
    accepted = ctx.accepted_domains
    grants = Delegation.objects.filter(mailbox=ctx.mailbox, access__in=REVIEWED_ACCESS).exclude(
        removed_at__lt=ctx.since
    )
    findings, actions = [], []
    total = 0
    for grant in grants.order_by("delegate", "access"):
        total += 1
        added = grant.added_at or grant.changed_at
        if added < ctx.since:
            continue
        external = is_external(grant.delegate, accepted)
        access = grant.get_access_display().lower()
        present = grant.removed_at is None
        if present:
            points = 35 if external else 20
            verdict = Finding.Verdict.MALICIOUS if external else Finding.Verdict.SUSPICIOUS
        else:
            points, verdict = 10, Finding.Verdict.SUSPICIOUS
        reason = (
            f"{access.capitalize()} granted to {grant.delegate}"
            f"{' (outside the organisation)' if external else ''} on {added:%Y-%m-%d %H:%M} UTC"
            + ("" if present else f"; removed {grant.removed_at:%Y-%m-%d %H:%M} UTC")
        )
        finding = ctx.record(
            name,
            Finding.EntityType.DELEGATION,
            f"{grant.delegate}:{grant.access}",
            label=f"{grant.get_access_display()} for {grant.delegate}" + ("" if present else " (removed)"),
            verdict=verdict,
            reasons=[reason],
            risk=[Risk(points, reason)],
            data={
                "delegate": grant.delegate,
                "access": grant.access,
                "external": external,
                "added_at": added.isoformat(),
                "present": present,
            },
        )
        findings.append(finding)
        if present:
            action = ctx.propose(
                RemediationAction.Type.REMOVE_DELEGATION,
                f"delegation:{grant.delegate}:{grant.access}",
                target={"mailbox_id": ctx.mailbox.pk, "delegate": grant.delegate, "access": grant.access},
                label=f"Remove {access} of {grant.delegate} on {ctx.mailbox.address}",
                finding=finding,
                present_now=True,
            )
            if action is not None:
                actions.append(action)
    summary = (
        f"{total} full-access / send-as grant{'s' if total != 1 else ''}; {len(findings)} added in 7 days"
    )
    return AnalyzerResult(summary, findings, actions)
