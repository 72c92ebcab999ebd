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
from typing import Any

from mailboxes.addresses import is_external, rule_forward_targets
from mailboxes.models import Mailbox

from ..detection import Detection
from ..models import AlertPolicy
from .common import Change, accepted_domains, rule_findings, rule_is_enabled


def detect(policy: AlertPolicy, mailboxes: list[Mailbox], start: datetime, end: datetime) -> list[Detection]:
    accepted = accepted_domains(policy)

    def forwarding(change: Change) -> dict[str, Any] | None:
        targets = rule_forward_targets(change.state.get("actions") or {})
        if not targets:
            return None
        addresses = sorted({a for group in targets.values() for a in group})
        return {
            "enabled": rule_is_enabled(change.state),
            "actions": sorted(targets),
            "addresses": addresses,
            "external": [a for a in addresses if is_external(a, accepted)],
        }

    return [
        Detection(
            mailbox_id=mailbox_id,
            evidence=evidence,
            details={"addresses": sorted({a for f in found for a in f["addresses"]}), "rules": found},
        )
        for mailbox_id, (evidence, found) in rule_findings(policy, mailboxes, start, end, forwarding).items()
    ]
