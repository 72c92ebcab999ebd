"""What the detectors share: the detector signature, the bulk read of directory history, and how an inbox
rule's actions and conditions are read (DESIGN section 4: ``actions`` holds ``forward_to``, ``redirect_to``,
``move_to_folder``, ``delete``, ``mark_as_read``; ``conditions`` holds ``subject_contains``,
``body_contains``, ``from`` …)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

from core.sql import AnyOf
from mailboxes.models import AcceptedDomain, DirectoryChange, Mailbox

from ..detection import Detection, Evidence
from ..models import AlertPolicy
from ..policies import FINANCE_WORDS, RARE_FOLDERS

Detector = Callable[[AlertPolicy, list[Mailbox], datetime, datetime], list[Detection]]

# Operations whose recorded state is the new, present state (a deletion records the state that was removed).
PRESENT_OPERATIONS = (
    DirectoryChange.Operation.CREATED,
    DirectoryChange.Operation.UPDATED,
    DirectoryChange.Operation.ADDED,
    DirectoryChange.Operation.SET,
)
_FINANCE_RE = re.compile(r"\b(" + "|".join(re.escape(word) for word in FINANCE_WORDS) + r")", re.IGNORECASE)


@dataclass(frozen=True)
class Change:
    """One row of directory history, as the detectors read it."""

    pk: int
    mailbox_id: int
    kind: str
    key: str
    operation: str
    at: datetime
    state: dict[str, Any]
    event_id: str

    @property
    def evidence_id(self) -> str:
        """The change's ingest event id; a change made in the console has none, so its row names it."""
        return self.event_id or f"directory-change:{self.pk}"

    def evidence(self) -> Evidence:
        return Evidence(self.kind, self.evidence_id, self.at)


def directory_changes(
    policy: AlertPolicy,
    mailboxes: Iterable[Mailbox],
    start: datetime,
    end: datetime,
    *,
    kinds: Iterable[str],
    operations: Iterable[str] = PRESENT_OPERATIONS,
) -> dict[int, list[Change]]:
    """The batch's directory changes of the given kinds with event time in ``[start, end]``, per mailbox,
    oldest first.

    One query for the whole batch. Changes that arrived after newer state (``applied`` false) are included:
    they happened, and detection works on event time.
    """
    rows = (
        DirectoryChange.objects.filter(
            AnyOf("mailbox_id", [m.pk for m in mailboxes]),
            tenant_id=policy.tenant_id,
            kind__in=list(kinds),
            operation__in=list(operations),
            at__gte=start,
            at__lte=end,
        )
        .order_by("mailbox_id", "at", "id")
        .values_list("id", "mailbox_id", "kind", "key", "operation", "at", "state", "event_id")
    )
    changes: dict[int, list[Change]] = defaultdict(list)
    for pk, mailbox_id, kind_, key, operation, at, state, event_id in rows:
        changes[mailbox_id].append(Change(pk, mailbox_id, kind_, key, operation, at, state or {}, event_id))
    return changes


RULE_OPERATIONS = (DirectoryChange.Operation.CREATED, DirectoryChange.Operation.UPDATED)


def rule_findings(
    policy: AlertPolicy,
    mailboxes: list[Mailbox],
    start: datetime,
    end: datetime,
    describe: Callable[[Change], dict[str, Any] | None],
) -> dict[int, tuple[list[Evidence], list[dict[str, Any]]]]:
    """Per mailbox (in ``mailboxes``' order), the inbox rules created or updated in ``[start, end]`` that
    ``describe`` finds something in (it returns None for the others): their evidence and findings, oldest
    first, each finding the rule's id, name and operation, what ``describe`` says, and when (one query)."""
    rules = directory_changes(
        policy, mailboxes, start, end, kinds=(DirectoryChange.Kind.INBOX_RULE,), operations=RULE_OPERATIONS
    )
    found: dict[int, tuple[list[Evidence], list[dict[str, Any]]]] = {}
    for mailbox in mailboxes:
        for change in rules.get(mailbox.pk, []):
            described = describe(change)
            if described is None:
                continue
            evidence, findings = found.setdefault(mailbox.pk, ([], []))
            evidence.append(change.evidence())
            findings.append(
                {
                    "rule_id": change.key or change.state.get("rule_id", ""),
                    "rule_name": change.state.get("name", ""),
                    "operation": change.operation,
                    **described,
                    "at": change.at.isoformat(),
                }
            )
    return found


def with_reasons(
    mailbox_id: int, evidence: Iterable[Evidence], reasons: list[dict], severity: str | None = None
) -> Detection:
    """A detection whose details list the rules that fired (``reasons``), its evidence in event order."""
    ordered = sorted(evidence, key=lambda e: (e.at, e.event_id))
    return Detection(mailbox_id=mailbox_id, evidence=ordered, details={"reasons": reasons}, severity=severity)


def first_times(rows: QuerySet[Any], mailbox_field: str, mailbox_ids: Iterable[int]) -> dict[int, datetime]:
    """Each user's earliest ``time`` among ``rows`` (users without one are absent): one probe of the
    ``(tenant, mailbox, time)`` index per user, read from its oldest entry, so the cost follows the users of
    a batch, not their history; the same answer as ``MIN(time)`` over all of it."""
    first = rows.filter(**{mailbox_field: OuterRef("pk")}).order_by("time").values("time")[:1]
    found = (
        Mailbox.objects.filter(AnyOf("pk", mailbox_ids))
        .annotate(first=Subquery(first))
        .values_list("pk", "first")
    )
    return {pk: at for pk, at in found if at is not None}


def accepted_domains(policy: AlertPolicy) -> set[str]:
    """The policy's tenant's accepted domains (one query; mail to them is internal)."""
    return set(AcceptedDomain.objects.filter(tenant_id=policy.tenant_id).values_list("domain", flat=True))


def rule_is_enabled(state: dict[str, Any]) -> bool:
    """A rule's ``enabled`` defaults to true (DESIGN section 4)."""
    return state.get("enabled", True) is not False


def manipulation_actions(actions: dict[str, Any]) -> list[str]:
    """The actions of a rule that hide mail from its owner: delete, mark as read, move to a rare folder."""
    found = []
    if actions.get("delete"):
        found.append("delete")
    if actions.get("mark_as_read"):
        found.append("mark_as_read")
    folder = actions.get("move_to_folder")
    if isinstance(folder, str) and folder.strip().lower() in RARE_FOLDERS:
        found.append(f"move_to_folder: {folder.strip()}")
    return found


def finance_keywords(conditions: dict[str, Any]) -> list[str]:
    """The finance words (FINANCE_WORDS) a rule's conditions look for, lowercased and sorted."""
    found: set[str] = set()

    def visit(value: Any) -> None:
        if isinstance(value, str):
            found.update(match.lower() for match in _FINANCE_RE.findall(value))
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)
        elif isinstance(value, list | tuple):
            for item in value:
                visit(item)

    visit(conditions)
    return sorted(found)
