"""Writes of the mailbox settings an attacker changes: inbox rules, forwarding, delegations.

Every change also appends a ``DirectoryChange`` row (the history an investigation reads). State is the newest
by *event time* (``at``): a change older than the state held is recorded as history with ``applied=False`` and
changes nothing. The three batch appliers are one skeleton, :class:`_Setting` (sort by event time, load the
rows, apply each change or record it as history only, write the batch in a few queries); each kind supplies
only its storage and how one change alters one row. Changes made by the console (``source="console"``) or by a
person (``actor``) are also written to the audit trail; telemetry is recorded in the history only.

Import these through :mod:`mailboxes.services`, which re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any, Protocol

from django.contrib.auth.models import User
from django.db import models, transaction
from django.utils import timezone

from core.models import Tenant
from core.services import record_audit

from .addresses import is_valid_address, normalize_address
from .exceptions import DirectoryError
from .models import Delegation, DirectoryChange, InboxRule, Mailbox, MailboxForwarding

Kind = DirectoryChange.Kind
Operation = DirectoryChange.Operation
CONSOLE = DirectoryChange.Source.CONSOLE

BULK_BATCH_SIZE = 2000
RULE_OPERATIONS = (Operation.CREATED, Operation.UPDATED, Operation.DELETED)
DELEGATION_OPERATIONS = (Operation.ADDED, Operation.REMOVED)
RULE_STATE_FIELDS = ("rule_id", "name", "conditions", "actions", "enabled")  # the keys of InboxRule.state()


@dataclass(frozen=True, slots=True)
class InboxRuleChange:
    """An inbox rule created / updated (with its full state) or deleted."""

    mailbox_id: int
    rule_id: str
    operation: str
    at: datetime
    name: str = ""
    conditions: dict[str, Any] = field(default_factory=dict)
    actions: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    event_id: str = ""

    def state(self) -> dict[str, Any]:
        """The rule's state as :meth:`InboxRule.state` records it."""
        return {name: getattr(self, name) for name in RULE_STATE_FIELDS}


@dataclass(frozen=True, slots=True)
class ForwardingChange:
    """Mailbox forwarding set to ``forward_to``, or turned off (``forward_to`` None)."""

    mailbox_id: int
    at: datetime
    forward_to: str | None
    keep_copy: bool = False
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class DelegationChange:
    """A permission on a mailbox granted to (``added``) or taken from (``removed``) a delegate."""

    mailbox_id: int
    delegate: str
    access: str
    operation: str
    at: datetime
    event_id: str = ""


def valid_address(address: str) -> str:
    """``address`` normalized; :class:`DirectoryError` when it is not a valid email address."""
    cleaned = normalize_address(address)
    if not is_valid_address(cleaned):
        raise DirectoryError(f"{address!r} is not a valid email address.")
    return cleaned


def is_audited(source: str, actor: User | None) -> bool:
    return actor is not None or source == CONSOLE


def _save_directory_batch(
    model: type[models.Model],
    new: dict,
    changed: dict,
    fields: list[str],
    history: list[DirectoryChange],
    audits: list[tuple[models.Model, str, Any, Any]],
    *,
    audit_prefix: str,
    source: str,
    actor: User | None,
    tenant: Tenant,
) -> None:
    """Write one batch of directory state (new and changed rows), its history, and — for a person's or the
    console's change — one audit row per change (``audits``: target, operation, before, after)."""
    if new:
        model._default_manager.bulk_create(list(new.values()), batch_size=BULK_BATCH_SIZE)
    if changed:
        model._default_manager.bulk_update(list(changed.values()), fields, batch_size=BULK_BATCH_SIZE)
    DirectoryChange.objects.bulk_create(history, batch_size=BULK_BATCH_SIZE)
    if is_audited(source, actor):
        for row, operation, before, after in audits:
            record_audit(
                f"{audit_prefix}.{operation}",
                target=row,
                actor=actor,
                actor_label=source,
                tenant=tenant,
                before=before,
                after=after,
            )


def history_row(
    tenant: Tenant,
    mailbox: Mailbox | int,
    kind: str,
    key: str,
    operation: str,
    at: datetime,
    state: dict[str, Any],
    *,
    applied: bool,
    event_id: str,
    source: str,
    recorded_at: datetime,
) -> DirectoryChange:
    target = {"mailbox": mailbox} if isinstance(mailbox, Mailbox) else {"mailbox_id": mailbox}
    return DirectoryChange(
        tenant=tenant,
        kind=kind,
        key=key,
        operation=operation,
        at=at,
        state=state,
        applied=applied,
        event_id=event_id,
        source=source,
        recorded_at=recorded_at,
        **target,
    )


class _Removals:
    """When rules / delegations were removed, from history and the batch. Read lazily, once a batch, and only
    when a late, older creation needs it: events arriving in order never pay the query."""

    def __init__(
        self,
        tenant: Tenant,
        kind: str,
        operation: str,
        in_batch: list[tuple[tuple, datetime]],
        *,
        key_of: Callable[[int, str, dict | None], tuple],
        mailbox_ids: set[int],
        keys: set[str],
    ) -> None:
        self._query = dict(
            tenant=tenant, kind=kind, operation=operation, mailbox_id__in=mailbox_ids, key__in=keys
        )
        self._key_of = key_of
        self._in_batch = in_batch
        self._times: dict[tuple, list[datetime]] | None = None

    def _load(self) -> dict[tuple, list[datetime]]:
        if self._times is None:
            self._times = {}
            rows = DirectoryChange.objects.filter(**self._query).values_list(
                "mailbox_id", "key", "state", "at"
            )
            for mailbox_id, key, state, at in rows:
                self._times.setdefault(self._key_of(mailbox_id, key, state), []).append(at)
            for batch_key, at in self._in_batch:
                self._times.setdefault(batch_key, []).append(at)
        return self._times

    def in_last_lifetime(
        self, key: tuple, at: datetime, started_at: datetime | None, removed_at: datetime | None
    ) -> bool:
        """Whether an older creation at ``at`` belongs to the entity's current lifetime (present) or its last
        one (removed): the first removal after ``at`` is none (present) or the final one (removed)."""
        if started_at is not None and at >= started_at:
            return False
        later = [t for t in self._load().get(key, []) if t > at]
        first_removal_after = min(later) if later else None
        return first_removal_after == removed_at


class _Change(Protocol):
    @property
    def mailbox_id(self) -> int: ...
    @property
    def at(self) -> datetime: ...
    @property
    def event_id(self) -> str: ...


@dataclass(frozen=True, slots=True)
class _Applied:
    """What one change did to its row: the history row's operation, key and state, and (when the change is
    the newest of its row) the audit row's before / after."""

    operation: str
    key: str
    state: dict[str, Any]
    audit: tuple[dict | None, dict | None] | None = None


class _Setting[C: _Change, R: (InboxRule, MailboxForwarding, Delegation)]:
    """One kind of mailbox setting and its batch applier: calling it as ``setting(tenant, changes, *, source,
    actor=None)`` applies ``changes`` in event-time order and returns the rows touched, in that order.

    The kind is stored in ``model``, one row per ``key_fields`` (the same names on the change), written with
    ``fields``, recorded as ``history_kind`` history and ``audit_prefix`` audit rows. ``prepare(tenant,
    changes)`` checks the batch and returns ``apply(row, change, newer, existed)``, which changes the row when
    the change is the newest of its row (``newer``) and says what to record. The rest is the same for every
    kind: sort by event time, load the rows the batch names, create a row the first time a key is seen, write
    new and changed rows, the history and the audit rows in a few queries.
    """

    def __init__(
        self,
        model: type[R],
        history_kind: str,
        key_fields: tuple[str, ...],
        fields: list[str],
        audit_prefix: str,
        prepare: Callable[[Tenant, Sequence[C]], Callable[[R, C, bool, bool], _Applied]],
    ) -> None:
        self.model: type[R] = model
        self.history_kind = history_kind
        self.key_fields = key_fields
        self.fields = fields
        self.audit_prefix = audit_prefix
        self.prepare: Callable[[Tenant, Sequence[C]], Callable[[R, C, bool, bool], _Applied]] = prepare
        self.__doc__ = prepare.__doc__

    def key_of(self, item: C | R) -> tuple[Any, ...]:
        return tuple(getattr(item, name) for name in self.key_fields)

    def _load(self, tenant: Tenant, changes: Sequence[C]) -> dict[tuple[Any, ...], R]:
        named = {f"{name}__in": {getattr(c, name) for c in changes} for name in self.key_fields}
        return {self.key_of(row): row for row in self.model._default_manager.filter(tenant=tenant, **named)}

    def __call__(
        self, tenant: Tenant, changes: Sequence[C], *, source: str, actor: User | None = None
    ) -> list[R]:
        if not changes:
            return []
        apply = self.prepare(tenant, changes)
        ordered = sorted(changes, key=attrgetter("at"))
        now = timezone.now()
        with transaction.atomic():
            rows = self._load(tenant, ordered)
            new: dict[Hashable, R] = {}
            changed: dict[Hashable, R] = {}
            history: list[DirectoryChange] = []
            audits: list[tuple[models.Model, str, Any, Any]] = []
            touched: list[R] = []
            for change in ordered:
                key = self.key_of(change)
                row = rows.get(key)
                existed = row is not None
                newer = row is None or change.at >= row.changed_at
                if row is None:
                    row = self.model(tenant=tenant, **dict(zip(self.key_fields, key, strict=True)))
                    rows[key] = new[key] = row
                elif key not in new:
                    changed.setdefault(key, row)
                applied: _Applied = apply(row, change, newer, existed)
                history.append(
                    history_row(
                        tenant,
                        change.mailbox_id,
                        self.history_kind,
                        applied.key,
                        applied.operation,
                        change.at,
                        applied.state,
                        applied=newer,
                        event_id=change.event_id,
                        source=source,
                        recorded_at=now,
                    )
                )
                if newer and applied.audit is not None:
                    before, after = applied.audit
                    audits.append((row, applied.operation, before, after))
                touched.append(row)
            _save_directory_batch(
                self.model,
                new,
                changed,
                self.fields,
                history,
                audits,
                audit_prefix=self.audit_prefix,
                source=source,
                actor=actor,
                tenant=tenant,
            )
        return touched


# --- inbox rules --------------------------------------------------------------------------------------------


def _inbox_rule_changes(
    tenant: Tenant, changes: Sequence[InboxRuleChange]
) -> Callable[[InboxRule, InboxRuleChange, bool, bool], _Applied]:
    """Apply inbox rule changes in event-time order; the newest change of a rule is its state.

    ``created`` / ``updated`` carry the rule's full state (a rule not yet known is created by either);
    ``deleted`` sets ``removed_at`` (a deletion of an unknown rule is kept as a removed row, so an older
    creation arriving later cannot resurrect it). An older ``created`` arriving late still moves
    ``created_at`` back. Returns the rules touched, in the order of ``changes`` sorted by time.
    """
    for change in changes:
        if change.operation not in RULE_OPERATIONS:
            raise DirectoryError(f"Unknown inbox rule operation {change.operation!r}.")
    removals = _Removals(
        tenant,
        Kind.INBOX_RULE,
        Operation.DELETED,
        [((c.mailbox_id, c.rule_id), c.at) for c in changes if c.operation == Operation.DELETED],
        key_of=lambda mailbox_id, key, state: (mailbox_id, key),
        mailbox_ids={c.mailbox_id for c in changes},
        keys={c.rule_id for c in changes},
    )

    def apply(rule: InboxRule, change: InboxRuleChange, newer: bool, existed: bool) -> _Applied:
        before = rule.state() if existed and rule.is_present else None
        if change.operation == Operation.DELETED:
            state = before or {"rule_id": change.rule_id}
            if newer:
                rule.removed_at = rule.changed_at = change.at
        else:
            state = change.state()
            if newer:
                if rule.removed_at is not None or rule.created_at is None:
                    rule.created_at = change.at  # a new rule, or a removed one coming back
                rule.removed_at = None
                rule.name, rule.conditions = change.name, change.conditions
                rule.actions, rule.enabled = change.actions, change.enabled
                rule.changed_at = change.at
            elif removals.in_last_lifetime(
                (change.mailbox_id, change.rule_id), change.at, rule.created_at, rule.removed_at
            ):
                # A late, older change of the rule's current (or last) lifetime: it existed since then.
                rule.created_at = change.at
        after = rule.state() if rule.is_present else None
        return _Applied(change.operation, change.rule_id, state, (before, after))

    return apply


apply_inbox_rule_changes = _Setting(
    InboxRule,
    Kind.INBOX_RULE,
    ("mailbox_id", "rule_id"),
    ["name", "conditions", "actions", "enabled", "created_at", "changed_at", "removed_at"],
    "mailboxes.inbox_rule",
    _inbox_rule_changes,
)


def apply_inbox_rule_change(
    mailbox: Mailbox,
    *,
    rule_id: str,
    operation: str,
    actor: User | None,
    at: datetime | None = None,
    name: str = "",
    conditions: dict[str, Any] | None = None,
    actions: dict[str, Any] | None = None,
    enabled: bool = True,
    source: str = CONSOLE,
    event_id: str = "",
) -> InboxRule:
    """Create, update or delete one inbox rule of ``mailbox`` (remediation: ``operation="deleted"``; undo:
    re-create it from the saved state). See :func:`apply_inbox_rule_changes`.
    """
    change = InboxRuleChange(
        mailbox_id=mailbox.pk,
        rule_id=rule_id,
        operation=operation,
        at=at or timezone.now(),
        name=name,
        conditions=conditions or {},
        actions=actions or {},
        enabled=enabled,
        event_id=event_id,
    )
    return apply_inbox_rule_changes(mailbox.tenant, [change], source=source, actor=actor)[0]


# --- forwarding ---------------------------------------------------------------------------------------------


def _forwarding_changes(
    tenant: Tenant, changes: Sequence[ForwardingChange]
) -> Callable[[MailboxForwarding, ForwardingChange, bool, bool], _Applied]:
    """Apply mailbox forwarding changes in event-time order; the newest change is the mailbox's forwarding.

    History: ``set`` rows hold the new forwarding, ``cleared`` rows the forwarding that was turned off.
    """

    def apply(row: MailboxForwarding, change: ForwardingChange, newer: bool, existed: bool) -> _Applied:
        before = row.state() if existed else {"forward_to": None, "keep_copy": False}
        requested = {"forward_to": change.forward_to, "keep_copy": change.keep_copy}
        operation = Operation.SET if change.forward_to else Operation.CLEARED
        if newer:
            row.forward_to, row.keep_copy, row.changed_at = change.forward_to, change.keep_copy, change.at
        state = before if operation == Operation.CLEARED and newer else requested
        return _Applied(operation, "", state, (before, requested))

    return apply


set_forwardings = _Setting(
    MailboxForwarding,
    Kind.FORWARDING,
    ("mailbox_id",),
    ["forward_to", "keep_copy", "changed_at"],
    "mailboxes.forwarding",
    _forwarding_changes,
)


def set_forwarding(
    mailbox: Mailbox,
    *,
    forward_to: str | None,
    actor: User | None,
    keep_copy: bool = False,
    at: datetime | None = None,
    source: str = CONSOLE,
    event_id: str = "",
) -> MailboxForwarding:
    """Set (or with ``forward_to=None`` turn off) the mailbox's forwarding. See :func:`set_forwardings`."""
    cleaned = None if forward_to is None else valid_address(forward_to)
    change = ForwardingChange(mailbox.pk, at or timezone.now(), cleaned, keep_copy, event_id)
    return set_forwardings(mailbox.tenant, [change], source=source, actor=actor)[0]


# --- delegations --------------------------------------------------------------------------------------------


def _delegation_changes(
    tenant: Tenant, changes: Sequence[DelegationChange]
) -> Callable[[Delegation, DelegationChange, bool, bool], _Applied]:
    """Apply delegation changes in event-time order; the newest change of a (mailbox, delegate, access) wins.

    A removal of an unknown delegation is kept as a removed row (so an older ``added`` arriving later is
    history only, though it fills in ``added_at``). History rows are keyed by the delegate's address.
    """
    for change in changes:
        if change.operation not in DELEGATION_OPERATIONS:
            raise DirectoryError(f"Unknown delegation operation {change.operation!r}.")
        if change.access not in Delegation.Access.values:
            raise DirectoryError(f"Unknown delegation access {change.access!r}.")
    removals = _Removals(
        tenant,
        Kind.DELEGATION,
        Operation.REMOVED,
        [((c.mailbox_id, c.delegate, c.access), c.at) for c in changes if c.operation == Operation.REMOVED],
        key_of=lambda mailbox_id, key, state: (mailbox_id, key, (state or {}).get("access")),
        mailbox_ids={c.mailbox_id for c in changes},
        keys={c.delegate for c in changes},
    )

    def apply(row: Delegation, change: DelegationChange, newer: bool, existed: bool) -> _Applied:
        added = change.operation == Operation.ADDED
        if newer:
            if added and (row.removed_at is not None or row.added_at is None):
                row.added_at = change.at
            row.removed_at = None if added else change.at
            row.changed_at = change.at
        elif added and removals.in_last_lifetime(
            (change.mailbox_id, change.delegate, change.access), change.at, row.added_at, row.removed_at
        ):
            row.added_at = change.at  # a late, older grant of the current (or last) lifetime
        audit = ({**row.state(), "present": not added}, {**row.state(), "present": added})
        return _Applied(change.operation, change.delegate, row.state(), audit)

    return apply


apply_delegation_changes = _Setting(
    Delegation,
    Kind.DELEGATION,
    ("mailbox_id", "delegate", "access"),
    ["added_at", "changed_at", "removed_at"],
    "mailboxes.delegation",
    _delegation_changes,
)


def apply_delegation_change(
    mailbox: Mailbox,
    *,
    delegate: str,
    access: str,
    operation: str,
    actor: User | None,
    at: datetime | None = None,
    source: str = CONSOLE,
    event_id: str = "",
) -> Delegation:
    """Add or remove one delegation of ``mailbox`` (remediation: ``operation="removed"``; undo: "added")."""
    change = DelegationChange(
        mailbox.pk, valid_address(delegate), access, operation, at or timezone.now(), event_id
    )
    return apply_delegation_changes(mailbox.tenant, [change], source=source, actor=actor)[0]
