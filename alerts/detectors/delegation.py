"""Mailbox delegation added (DESIGN section 5).

Rule: a full-access or send-as permission granted on a mailbox, with event time in the batch's range
(send-on-behalf is not reported: it leaves the owner's name on the mail).

Evidence: the delegation changes by their ingest event id (kind ``delegation``); details list the delegates
and their access. One bulk query of directory history for the whole batch.
"""

from __future__ import annotations

from datetime import datetime

from mailboxes.models import Delegation, DirectoryChange, Mailbox, normalize_address

from ..detection import Detection
from ..models import AlertPolicy
from .common import directory_changes

REPORTED_ACCESS = (Delegation.Access.FULL_ACCESS, Delegation.Access.SEND_AS)


def detect(policy: AlertPolicy, mailboxes: list[Mailbox], start: datetime, end: datetime) -> list[Detection]:
    changes = directory_changes(
        policy,
        mailboxes,
        start,
        end,
        kinds=(DirectoryChange.Kind.DELEGATION,),
        operations=(DirectoryChange.Operation.ADDED,),
    )
    detections = []
    for mailbox in mailboxes:
        granted = [c for c in changes.get(mailbox.pk, []) if c.state.get("access") in REPORTED_ACCESS]
        if granted:
            detections.append(
                Detection(
                    mailbox_id=mailbox.pk,
                    evidence=[c.evidence() for c in granted],
                    details={
                        "delegations": [
                            {
                                "delegate": normalize_address(c.state.get("delegate") or c.key),
                                "access": c.state["access"],
                                "at": c.at.isoformat(),
                            }
                            for c in granted
                        ]
                    },
                )
            )
    return detections
