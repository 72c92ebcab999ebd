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
from typing import Any

from mailboxes.models import Mailbox

from ..detection import Detection
from ..models import AlertPolicy
from .common import Change, finance_keywords, manipulation_actions, rule_findings, rule_is_enabled

FINANCE_KEYWORDS = "finance keywords"


def hiding(change: Change) -> dict[str, Any] | None:
    """How an enabled rule hides mail, and the finance words it looks for; None when it hides nothing."""
    if not rule_is_enabled(change.state):
        return None
    actions = manipulation_actions(change.state.get("actions") or {})
    if not actions:
        return None
    return {"actions": actions, FINANCE_KEYWORDS: finance_keywords(change.state.get("conditions") or {})}


def detect(policy: AlertPolicy, mailboxes: list[Mailbox], start: datetime, end: datetime) -> list[Detection]:
    detections = []
    for mailbox_id, (evidence, found) in rule_findings(policy, mailboxes, start, end, hiding).items():
        details: dict = {
            "actions": sorted({a for f in found for a in f["actions"]}),
            "rules": found,
        }
        keywords = sorted({k for f in found for k in f[FINANCE_KEYWORDS]})
        if keywords:
            details[FINANCE_KEYWORDS] = keywords
        detections.append(Detection(mailbox_id=mailbox_id, evidence=evidence, details=details))
    return detections
