"""Suspicious email forwarding activity (DESIGN section 5).

Rule: a change in the batch's event-time range that makes mail leave the tenant: mailbox (SMTP) forwarding set
to an address outside the tenant's accepted domains, or an inbox rule created or updated, enabled, whose
``forward_to`` / ``redirect_to`` names such an address. Internal forwarding is not suspicious here (it still
raises "Creation of forwarding/redirect rule" for rules).

A target on a domain imitating an accepted domain (:mod:`.lookalike`) makes the alert high whatever the
policy's severity, and is named in the details (``lookalikes``).

Evidence: the directory changes by their ingest event id (kind ``forwarding`` / ``inbox_rule``); details name
the kind (mailbox / inbox rule) and the external addresses. Two bulk queries for the whole batch (accepted
domains, directory history); deterministic and idempotent because evidence is named by event id.
"""

from __future__ import annotations

from datetime import datetime

from mailboxes.addresses import addresses_in, is_external, rule_forward_targets
from mailboxes.models import DirectoryChange, Mailbox

from ..detection import Detection
from ..models import AlertPolicy, Severity
from .common import Change, accepted_domains, directory_changes, rule_is_enabled
from .lookalike import LookalikeMatcher

MAILBOX = "mailbox"
INBOX_RULE = "inbox rule"


def detect(policy: AlertPolicy, mailboxes: list[Mailbox], start: datetime, end: datetime) -> list[Detection]:
    accepted = accepted_domains(policy)
    matcher = LookalikeMatcher(accepted)
    changes = directory_changes(
        policy,
        mailboxes,
        start,
        end,
        kinds=(DirectoryChange.Kind.FORWARDING, DirectoryChange.Kind.INBOX_RULE),
    )
    detections = []
    for mailbox in mailboxes:
        evidence = []
        findings = []
        for change in changes.get(mailbox.pk, []):
            finding = _external_forwarding(change, accepted)
            if finding is not None:
                evidence.append(change.evidence())
                findings.append(finding)
        if evidence:
            addresses = sorted({a for f in findings for a in f["addresses"]})
            lookalikes = [x.as_dict() for x in matcher.in_domains(a.rpartition("@")[2] for a in addresses)]
            detections.append(
                Detection(
                    mailbox_id=mailbox.pk,
                    evidence=evidence,
                    details={
                        "kinds": sorted({f["kind"] for f in findings}),
                        "addresses": addresses,
                        "forwarding": findings,
                        **({"lookalikes": lookalikes} if lookalikes else {}),
                    },
                    severity=Severity.HIGH.value if lookalikes else None,
                )
            )
    return detections


def _external_forwarding(change: Change, accepted: set[str]) -> dict | None:
    """What a forwarding or rule change sends outside the tenant, or None when it keeps mail inside."""
    if change.kind == DirectoryChange.Kind.FORWARDING:
        external = [a for a in addresses_in(change.state.get("forward_to")) if is_external(a, accepted)]
        if not external:
            return None
        return {
            "kind": MAILBOX,
            "addresses": external,
            "keep_copy": bool(change.state.get("keep_copy")),
            "at": change.at.isoformat(),
        }
    if not rule_is_enabled(change.state):
        return None
    outside_by_action: dict[str, list[str]] = {}
    for action, addresses in rule_forward_targets(change.state.get("actions") or {}).items():
        outside = [a for a in addresses if is_external(a, accepted)]
        if outside:
            outside_by_action[action] = outside
    if not outside_by_action:
        return None
    return {
        "kind": INBOX_RULE,
        "rule_id": change.key or change.state.get("rule_id", ""),
        "rule_name": change.state.get("name", ""),
        "operation": change.operation,
        "actions": sorted(outside_by_action),
        "addresses": sorted({a for addresses in outside_by_action.values() for a in addresses}),
        "at": change.at.isoformat(),
    }
