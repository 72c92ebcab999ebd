"""Suspicious inbox manipulation rule (DESIGN section 5).

Rule: an enabled inbox rule created or updated in the batch's event-time range that hides mail from its owner:
it deletes, marks as read, or moves mail to a rarely used folder (RARE_FOLDERS: RSS Feeds, Conversation
History, Notes, Junk Email …). When its conditions look for finance words (FINANCE_WORDS: invoice, payment,
wire, bank …) the details say so under "finance keywords" (the classic invoice-fraud rule).

Evidence: the rule changes by their ingest event id (kind ``inbox_rule``); details list each rule, its hiding
actions and finance keywords. One bulk query of directory history for the whole batch.
"""

from __future__ import annotations

from datetime import datetime

from mailboxes.models import DirectoryChange, Mailbox

from ..detection import Detection
from ..models import AlertPolicy
from .common import directory_changes, finance_keywords, manipulation_actions, rule_is_enabled

RULE_OPERATIONS = (DirectoryChange.Operation.CREATED, DirectoryChange.Operation.UPDATED)
FINANCE_KEYWORDS = "finance keywords"


def detect(policy: AlertPolicy, mailboxes: list[Mailbox], start: datetime, end: datetime) -> list[Detection]:
    rules = directory_changes(
        policy, mailboxes, start, end, kinds=(DirectoryChange.Kind.INBOX_RULE,), operations=RULE_OPERATIONS
    )
    detections = []
    for mailbox in mailboxes:
        evidence = []
        found = []
        for change in rules.get(mailbox.pk, []):
            if not rule_is_enabled(change.state):
                continue
            actions = manipulation_actions(change.state.get("actions") or {})
            if not actions:
                continue
            keywords = finance_keywords(change.state.get("conditions") or {})
            evidence.append(change.evidence())
            found.append(
                {
                    "rule_id": change.key or change.state.get("rule_id", ""),
                    "rule_name": change.state.get("name", ""),
                    "operation": change.operation,
                    "actions": actions,
                    FINANCE_KEYWORDS: keywords,
                    "at": change.at.isoformat(),
                }
            )
        if evidence:
            details: dict = {
                "actions": sorted({a for f in found for a in f["actions"]}),
                "rules": found,
            }
            keywords = sorted({k for f in found for k in f[FINANCE_KEYWORDS]})
            if keywords:
                details[FINANCE_KEYWORDS] = keywords
            detections.append(Detection(mailbox_id=mailbox.pk, evidence=evidence, details=details))
    return detections
