"""Creation of forwarding/redirect rule (DESIGN section 5, informational).

Rule: an inbox rule created or updated in the batch's event-time range whose actions forward or redirect mail,
to any address, internal or external, enabled or not (the analyst sees every such rule; whether it is
suspicious is "Suspicious email forwarding activity"'s question).

Evidence: the rule changes by their ingest event id (kind ``inbox_rule``); details list each rule with its
actions, addresses and which of them are external. One bulk query of directory history (plus the accepted
domains) for the whole batch.
"""

from __future__ import annotations

from datetime import datetime

from mailboxes.addresses import is_external, rule_forward_targets
from mailboxes.models import DirectoryChange, Mailbox

from ..detection import Detection
from ..models import AlertPolicy
from .common import accepted_domains, directory_changes, rule_is_enabled

RULE_OPERATIONS = (DirectoryChange.Operation.CREATED, DirectoryChange.Operation.UPDATED)


def detect(policy: AlertPolicy, mailboxes: list[Mailbox], start: datetime, end: datetime) -> list[Detection]:
    accepted = accepted_domains(policy)
    rules = directory_changes(
        policy, mailboxes, start, end, kinds=(DirectoryChange.Kind.INBOX_RULE,), operations=RULE_OPERATIONS
    )
    detections = []
    for mailbox in mailboxes:
        evidence = []
        found = []
        for change in rules.get(mailbox.pk, []):
            targets = rule_forward_targets(change.state.get("actions") or {})
            if not targets:
                continue
            addresses = sorted({a for group in targets.values() for a in group})
            evidence.append(change.evidence())
            found.append(
                {
                    "rule_id": change.key or change.state.get("rule_id", ""),
                    "rule_name": change.state.get("name", ""),
                    "operation": change.operation,
                    "enabled": rule_is_enabled(change.state),
                    "actions": sorted(targets),
                    "addresses": addresses,
                    "external": [a for a in addresses if is_external(a, accepted)],
                    "at": change.at.isoformat(),
                }
            )
        if evidence:
            detections.append(
                Detection(
                    mailbox_id=mailbox.pk,
                    evidence=evidence,
                    details={"addresses": sorted({a for f in found for a in f["addresses"]}), "rules": found},
                )
            )
    return detections
