"""Writes of the directory: accepted domains, mailboxes, inbox rules, forwarding, delegations, account state.

Every change of a mailbox, rule, forwarding or delegation also appends a ``DirectoryChange`` row (the history
an investigation reads). State is the newest by *event time* (``at``): a change older than the state held is
recorded as history with ``applied=False`` and changes nothing. Changes are applied in event-time order,
whatever order they come in.

Each verb has a batch form (used by the ingest service: a few queries per batch, never one per event) and a
single-item form for the console and remediation (``turn off forwarding`` is ``set_forwarding(mailbox,
forward_to=None, actor=…)``). Changes made here (``source="console"``) or by a person (``actor``) are also
written to the audit trail; telemetry (ingest, connectors) is recorded in the history only.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.utils import timezone

from core.models import Tenant
from core.services import record_audit

from .addresses import is_valid_address, is_valid_domain, normalize_address
from .exceptions import DirectoryError
from .models import (
    AcceptedDomain,
    Delegation,
    DirectoryChange,
    InboxRule,
    Mailbox,
    MailboxForwarding,
)

Kind = DirectoryChange.Kind
Operation = DirectoryChange.Operation
CONSOLE = DirectoryChange.Source.CONSOLE

BULK_BATCH_SIZE = 2000
MAILBOX_ATTRIBUTES = ("display_name", "department", "vip")
RULE_OPERATIONS = (Operation.CREATED, Operation.UPDATED, Operation.DELETED)
DELEGATION_OPERATIONS = (Operation.ADDED, Operation.REMOVED)


@dataclass(frozen=True, slots=True)
class MailboxChange:
    """A ``mailbox`` event (``attributes`` set, possibly empty) or a sighting of an address (``attributes``
    None): a sighting only creates the mailbox on first sight and lowers ``first_seen``.
    """

    address: str
    at: datetime
    attributes: dict[str, Any] | None = None
    event_id: str = ""


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
        return {
            "rule_id": self.rule_id,
            "name": self.name,
            "conditions": self.conditions,
            "actions": self.actions,
            "enabled": self.enabled,
        }


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


def _audited(source: str, actor: AbstractBaseUser | None) -> bool:
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
    actor: AbstractBaseUser | None,
    tenant: Tenant,
) -> None:
    """Write one batch of directory state (new and changed rows), its history, and — for a person's or the
    console's change — one audit row per change (``audits``: target, operation, before, after)."""
    if new:
        model.objects.bulk_create(list(new.values()), batch_size=BULK_BATCH_SIZE)
    if changed:
        model.objects.bulk_update(list(changed.values()), fields, batch_size=BULK_BATCH_SIZE)
    DirectoryChange.objects.bulk_create(history, batch_size=BULK_BATCH_SIZE)
    if _audited(source, actor):
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


def _history(
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
            for key, at in self._in_batch:
                self._times.setdefault(key, []).append(at)
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


# --- accepted domains ---------------------------------------------------------------------------------------


def _clean_domain(domain: str) -> str:
    cleaned = domain.strip().lower().rstrip(".")
    if not is_valid_domain(cleaned):
        raise DirectoryError(f"{domain!r} is not a valid domain name (e.g. example.com).")
    return cleaned


def add_accepted_domain(
    tenant: Tenant,
    domain: str,
    *,
    actor: AbstractBaseUser | None,
    source: str = AcceptedDomain.Source.ADMIN,
) -> AcceptedDomain:
    """Make ``domain`` an accepted domain of the tenant (mail to it is internal). Refuses a domain already
    accepted.
    """
    cleaned = _clean_domain(domain)
    with transaction.atomic():
        if AcceptedDomain.objects.filter(tenant=tenant, domain=cleaned).exists():
            raise DirectoryError(f"{cleaned} is already an accepted domain of {tenant}.")
        accepted = AcceptedDomain.objects.create(tenant=tenant, domain=cleaned, source=source)
        record_audit(
            "mailboxes.accepted_domain.added",
            target=accepted,
            actor=actor,
            after={"domain": cleaned, "source": source},
        )
    return accepted


def remove_accepted_domain(accepted_domain: AcceptedDomain, *, actor: AbstractBaseUser | None) -> None:
    """Stop accepting a domain. Existing mailboxes stay; a later ``mailbox`` event in it declares it again."""
    with transaction.atomic():
        record_audit(
            "mailboxes.accepted_domain.removed",
            target=accepted_domain,
            actor=actor,
            before={"domain": accepted_domain.domain, "source": accepted_domain.source},
        )
        accepted_domain.delete()


def declare_accepted_domains(
    tenant: Tenant,
    domains: Iterable[str],
    *,
    source_label: str = "ingest",
    known_domains: Collection[str] | None = None,
) -> list[AcceptedDomain]:
    """Accept the domains that ``mailbox`` events declare; known ones are left alone. One audit row per new
    domain.

    ``known_domains`` (the tenant's accepted domains, if the caller already read them) saves a query.
    """
    wanted = {d.lower() for d in domains}
    known = set(known_domains) if known_domains is not None else AcceptedDomain.objects.domains_of(tenant)
    new = sorted(wanted - known)
    if not new:
        return []
    with transaction.atomic():
        created = AcceptedDomain.objects.bulk_create(
            [AcceptedDomain(tenant=tenant, domain=d, source=AcceptedDomain.Source.DECLARED) for d in new]
        )
        for accepted in created:
            record_audit(
                "mailboxes.accepted_domain.declared",
                target=accepted,
                actor_label=source_label,
                after={"domain": accepted.domain, "source": accepted.source},
            )
    return created


def sync_accepted_domains(
    tenant: Tenant, domains: Iterable[str], *, actor: AbstractBaseUser | None = None
) -> tuple[list[str], list[str]]:
    """Set the connector-sourced accepted domains to ``domains`` (a platform's verified domains).

    Adds the missing ones, removes connector-sourced ones no longer listed; domains declared by events or
    added by an administrator are left alone. Returns (added, removed).
    """
    wanted = {_clean_domain(d) for d in domains}
    added: list[str] = []
    removed: list[str] = []
    with transaction.atomic():
        current = {a.domain: a for a in AcceptedDomain.objects.select_for_update().filter(tenant=tenant)}
        for domain in sorted(wanted - current.keys()):
            accepted = AcceptedDomain.objects.create(
                tenant=tenant, domain=domain, source=AcceptedDomain.Source.CONNECTOR
            )
            record_audit(
                "mailboxes.accepted_domain.added",
                target=accepted,
                actor=actor,
                actor_label="connector",
                after={"domain": domain, "source": accepted.source},
            )
            added.append(domain)
        for domain, accepted in sorted(current.items()):
            if domain not in wanted and accepted.source == AcceptedDomain.Source.CONNECTOR:
                remove_accepted_domain(accepted, actor=actor)
                removed.append(domain)
    return added, removed


# --- mailboxes ----------------------------------------------------------------------------------------------


def _mailbox_state(mailbox: Mailbox) -> dict[str, Any]:
    return {
        "address": mailbox.address,
        "display_name": mailbox.display_name,
        "department": mailbox.department,
        "vip": mailbox.vip,
    }


def _account_state(mailbox: Mailbox) -> dict[str, Any]:
    revoked = mailbox.sessions_revoked_at
    return {
        "address": mailbox.address,
        "account_enabled": mailbox.account_enabled,
        "password_reset_required": mailbox.password_reset_required,
        "sessions_revoked_at": revoked.isoformat() if revoked else None,
    }


def upsert_mailboxes(
    tenant: Tenant,
    changes: Sequence[MailboxChange],
    *,
    source: str,
    actor: AbstractBaseUser | None = None,
) -> dict[str, Mailbox]:
    """Create the mailboxes first seen in ``changes`` and apply ``mailbox`` events' attributes, newest event
    wins.

    Returns every named mailbox by (lowercased) address. Queries: one read, at most one insert, one update and
    one history insert, whatever the number of changes. A mailbox created here gets one ``created`` history
    row (from the earliest change that named it); each ``mailbox`` event adds its own row.
    """
    if not changes:
        return {}
    ordered = sorted(changes, key=attrgetter("at"))
    now = timezone.now()
    with transaction.atomic():
        mailboxes = {
            m.address: m
            for m in Mailbox.objects.filter(tenant=tenant, address__in={c.address for c in ordered})
        }
        created: dict[str, Mailbox] = {}
        changed: dict[str, Mailbox] = {}
        before: dict[str, dict[str, Any]] = {}
        history: list[DirectoryChange] = []
        for change in ordered:
            mailbox = mailboxes.get(change.address)
            first = mailbox is None
            if mailbox is None:
                mailbox = Mailbox(tenant=tenant, address=change.address, first_seen=change.at, updated_at=now)
                mailboxes[change.address] = created[change.address] = mailbox
            elif change.at < mailbox.first_seen:
                mailbox.first_seen = change.at
                if change.address not in created:
                    changed[change.address] = mailbox
            if change.attributes is None:
                if first:
                    history.append(
                        _history(
                            tenant,
                            mailbox,
                            Kind.MAILBOX,
                            mailbox.address,
                            Operation.CREATED,
                            change.at,
                            _mailbox_state(mailbox),
                            applied=True,
                            event_id=change.event_id,
                            source=source,
                            recorded_at=now,
                        )
                    )
                continue
            attributes = {
                k: v for k, v in change.attributes.items() if k in MAILBOX_ATTRIBUTES and v is not None
            }
            newer = mailbox.attributes_at is None or change.at >= mailbox.attributes_at
            if newer:
                if change.address not in created:
                    before.setdefault(change.address, _mailbox_state(mailbox))
                    changed[change.address] = mailbox
                for name, value in attributes.items():
                    setattr(mailbox, name, value)
                mailbox.attributes_at = change.at
                state = _mailbox_state(mailbox)
            else:
                state = {"address": mailbox.address, **attributes}
            history.append(
                _history(
                    tenant,
                    mailbox,
                    Kind.MAILBOX,
                    mailbox.address,
                    Operation.CREATED if first else Operation.UPDATED,
                    change.at,
                    state,
                    applied=newer,
                    event_id=change.event_id,
                    source=source,
                    recorded_at=now,
                )
            )
        if created:
            Mailbox.objects.bulk_create(list(created.values()), batch_size=BULK_BATCH_SIZE)
        if changed:
            for mailbox in changed.values():
                mailbox.updated_at = now
            Mailbox.objects.bulk_update(
                list(changed.values()),
                ["display_name", "department", "vip", "attributes_at", "first_seen", "updated_at"],
                batch_size=BULK_BATCH_SIZE,
            )
        DirectoryChange.objects.bulk_create(history, batch_size=BULK_BATCH_SIZE)
        if _audited(source, actor):
            for mailbox in created.values():
                record_audit(
                    "mailboxes.mailbox.created",
                    target=mailbox,
                    actor=actor,
                    actor_label=source,
                    after=_mailbox_state(mailbox),
                )
            for address, mailbox in changed.items():
                record_audit(
                    "mailboxes.mailbox.updated",
                    target=mailbox,
                    actor=actor,
                    actor_label=source,
                    before=before.get(address),
                    after=_mailbox_state(mailbox),
                )
    return mailboxes


def upsert_mailbox(
    tenant: Tenant,
    address: str,
    *,
    actor: AbstractBaseUser | None,
    at: datetime | None = None,
    display_name: str | None = None,
    department: str | None = None,
    vip: bool | None = None,
    source: str = CONSOLE,
    event_id: str = "",
) -> Mailbox:
    """Create or update one mailbox; attributes left None are kept. See :func:`upsert_mailboxes`."""
    cleaned = normalize_address(address)
    if not is_valid_address(cleaned):
        raise DirectoryError(f"{address!r} is not a valid email address.")
    attributes = {"display_name": display_name, "department": department, "vip": vip}
    change = MailboxChange(cleaned, at or timezone.now(), attributes, event_id)
    return upsert_mailboxes(tenant, [change], source=source, actor=actor)[cleaned]


def update_account_state(
    mailbox: Mailbox,
    *,
    actor: AbstractBaseUser | None,
    account_enabled: bool | None = None,
    password_reset_required: bool | None = None,
    sessions_revoked_at: datetime | None = None,
    source: str = CONSOLE,
) -> Mailbox:
    """Set the account state remediation changes (disable / enable, force a password reset, revoke sessions).

    Values left None are kept. Writes a ``mailbox`` history row with the new account state and an audit row; a
    call that changes nothing writes nothing.
    """
    now = timezone.now()
    with transaction.atomic():
        mailbox = Mailbox.objects.select_for_update().get(pk=mailbox.pk)
        before = _account_state(mailbox)
        if account_enabled is not None:
            mailbox.account_enabled = account_enabled
        if password_reset_required is not None:
            mailbox.password_reset_required = password_reset_required
        if sessions_revoked_at is not None:
            mailbox.sessions_revoked_at = sessions_revoked_at
        after = _account_state(mailbox)
        if after == before:
            return mailbox
        mailbox.save(
            update_fields=["account_enabled", "password_reset_required", "sessions_revoked_at", "updated_at"]
        )
        DirectoryChange.objects.create(
            tenant_id=mailbox.tenant_id,
            mailbox=mailbox,
            kind=Kind.MAILBOX,
            key=mailbox.address,
            operation=Operation.UPDATED,
            at=now,
            state=after,
            source=source,
            recorded_at=now,
        )
        record_audit(
            "mailboxes.mailbox.account_state_changed",
            target=mailbox,
            actor=actor,
            actor_label=source,
            before=before,
            after=after,
        )
    return mailbox


# --- inbox rules --------------------------------------------------------------------------------------------


def apply_inbox_rule_changes(
    tenant: Tenant,
    changes: Sequence[InboxRuleChange],
    *,
    source: str,
    actor: AbstractBaseUser | None = None,
) -> list[InboxRule]:
    """Apply inbox rule changes in event-time order; the newest change of a rule is its state.

    ``created`` / ``updated`` carry the rule's full state (a rule not yet known is created by either);
    ``deleted`` sets ``removed_at`` (a deletion of an unknown rule is kept as a removed row, so an older
    creation arriving later cannot resurrect it). An older ``created`` arriving late still moves
    ``created_at`` back. Returns the rules touched, in the order of ``changes`` sorted by time.
    """
    if not changes:
        return []
    for change in changes:
        if change.operation not in RULE_OPERATIONS:
            raise DirectoryError(f"Unknown inbox rule operation {change.operation!r}.")
    ordered = sorted(changes, key=attrgetter("at"))
    now = timezone.now()
    with transaction.atomic():
        rules = {
            (r.mailbox_id, r.rule_id): r
            for r in InboxRule.objects.filter(
                tenant=tenant,
                mailbox_id__in={c.mailbox_id for c in ordered},
                rule_id__in={c.rule_id for c in ordered},
            )
        }
        removals = _Removals(
            tenant,
            Kind.INBOX_RULE,
            Operation.DELETED,
            [((c.mailbox_id, c.rule_id), c.at) for c in ordered if c.operation == Operation.DELETED],
            key_of=lambda mailbox_id, key, state: (mailbox_id, key),
            mailbox_ids={c.mailbox_id for c in ordered},
            keys={c.rule_id for c in ordered},
        )
        new: dict[tuple[int, str], InboxRule] = {}
        changed: dict[tuple[int, str], InboxRule] = {}
        history: list[DirectoryChange] = []
        touched: list[InboxRule] = []
        audits: list[tuple[InboxRule, str, dict | None, dict | None]] = []
        for change in ordered:
            key = (change.mailbox_id, change.rule_id)
            rule = rules.get(key)
            newer = rule is None or change.at >= rule.changed_at
            before = rule.state() if rule is not None and rule.is_present else None
            if rule is None:
                rule = InboxRule(tenant=tenant, mailbox_id=change.mailbox_id, rule_id=change.rule_id)
                rules[key] = new[key] = rule
            elif key not in new:
                changed.setdefault(key, rule)
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
                elif removals.in_last_lifetime(key, change.at, rule.created_at, rule.removed_at):
                    # A late, older change of the rule's current (or last) lifetime: it existed since then.
                    rule.created_at = change.at
            history.append(
                _history(
                    tenant,
                    change.mailbox_id,
                    Kind.INBOX_RULE,
                    change.rule_id,
                    change.operation,
                    change.at,
                    state,
                    applied=newer,
                    event_id=change.event_id,
                    source=source,
                    recorded_at=now,
                )
            )
            touched.append(rule)
            if newer:
                audits.append((rule, change.operation, before, rule.state() if rule.is_present else None))
        _save_directory_batch(
            InboxRule,
            new,
            changed,
            ["name", "conditions", "actions", "enabled", "created_at", "changed_at", "removed_at"],
            history,
            audits,
            audit_prefix="mailboxes.inbox_rule",
            source=source,
            actor=actor,
            tenant=tenant,
        )
    return touched


def apply_inbox_rule_change(
    mailbox: Mailbox,
    *,
    rule_id: str,
    operation: str,
    actor: AbstractBaseUser | None,
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


def set_forwardings(
    tenant: Tenant,
    changes: Sequence[ForwardingChange],
    *,
    source: str,
    actor: AbstractBaseUser | None = None,
) -> list[MailboxForwarding]:
    """Apply mailbox forwarding changes in event-time order; the newest change is the mailbox's forwarding.

    History: ``set`` rows hold the new forwarding, ``cleared`` rows the forwarding that was turned off.
    """
    if not changes:
        return []
    ordered = sorted(changes, key=attrgetter("at"))
    now = timezone.now()
    with transaction.atomic():
        rows = {
            f.mailbox_id: f
            for f in MailboxForwarding.objects.filter(
                tenant=tenant, mailbox_id__in={c.mailbox_id for c in ordered}
            )
        }
        new: dict[int, MailboxForwarding] = {}
        changed: dict[int, MailboxForwarding] = {}
        history: list[DirectoryChange] = []
        touched: list[MailboxForwarding] = []
        audits: list[tuple[MailboxForwarding, str, dict, dict]] = []
        for change in ordered:
            row = rows.get(change.mailbox_id)
            newer = row is None or change.at >= row.changed_at
            before = row.state() if row is not None else {"forward_to": None, "keep_copy": False}
            requested = {"forward_to": change.forward_to, "keep_copy": change.keep_copy}
            operation = Operation.SET if change.forward_to else Operation.CLEARED
            if newer:
                if row is None:
                    row = MailboxForwarding(tenant=tenant, mailbox_id=change.mailbox_id)
                    rows[change.mailbox_id] = new[change.mailbox_id] = row
                elif change.mailbox_id not in new:
                    changed.setdefault(change.mailbox_id, row)
                row.forward_to, row.keep_copy, row.changed_at = change.forward_to, change.keep_copy, change.at
                audits.append((row, operation, before, requested))
            state = before if operation == Operation.CLEARED and newer else requested
            history.append(
                _history(
                    tenant,
                    change.mailbox_id,
                    Kind.FORWARDING,
                    "",
                    operation,
                    change.at,
                    state,
                    applied=newer,
                    event_id=change.event_id,
                    source=source,
                    recorded_at=now,
                )
            )
            touched.append(rows[change.mailbox_id])
        _save_directory_batch(
            MailboxForwarding,
            new,
            changed,
            ["forward_to", "keep_copy", "changed_at"],
            history,
            audits,
            audit_prefix="mailboxes.forwarding",
            source=source,
            actor=actor,
            tenant=tenant,
        )
    return touched


def set_forwarding(
    mailbox: Mailbox,
    *,
    forward_to: str | None,
    actor: AbstractBaseUser | None,
    keep_copy: bool = False,
    at: datetime | None = None,
    source: str = CONSOLE,
    event_id: str = "",
) -> MailboxForwarding:
    """Set (or with ``forward_to=None`` turn off) the mailbox's forwarding. See :func:`set_forwardings`."""
    if forward_to is not None:
        forward_to = normalize_address(forward_to)
        if not is_valid_address(forward_to):
            raise DirectoryError(f"{forward_to!r} is not a valid email address.")
    change = ForwardingChange(mailbox.pk, at or timezone.now(), forward_to, keep_copy, event_id)
    return set_forwardings(mailbox.tenant, [change], source=source, actor=actor)[0]


# --- delegations --------------------------------------------------------------------------------------------


def apply_delegation_changes(
    tenant: Tenant,
    changes: Sequence[DelegationChange],
    *,
    source: str,
    actor: AbstractBaseUser | None = None,
) -> list[Delegation]:
    """Apply delegation changes in event-time order; the newest change of a (mailbox, delegate, access) wins.

    A removal of an unknown delegation is kept as a removed row (so an older ``added`` arriving later is
    history only, though it fills in ``added_at``). History rows are keyed by the delegate's address.
    """
    if not changes:
        return []
    for change in changes:
        if change.operation not in DELEGATION_OPERATIONS:
            raise DirectoryError(f"Unknown delegation operation {change.operation!r}.")
        if change.access not in Delegation.Access.values:
            raise DirectoryError(f"Unknown delegation access {change.access!r}.")
    ordered = sorted(changes, key=attrgetter("at"))
    now = timezone.now()
    with transaction.atomic():
        rows = {
            (d.mailbox_id, d.delegate, d.access): d
            for d in Delegation.objects.filter(
                tenant=tenant,
                mailbox_id__in={c.mailbox_id for c in ordered},
                delegate__in={c.delegate for c in ordered},
            )
        }
        removals = _Removals(
            tenant,
            Kind.DELEGATION,
            Operation.REMOVED,
            [
                ((c.mailbox_id, c.delegate, c.access), c.at)
                for c in ordered
                if c.operation == Operation.REMOVED
            ],
            key_of=lambda mailbox_id, key, state: (mailbox_id, key, (state or {}).get("access")),
            mailbox_ids={c.mailbox_id for c in ordered},
            keys={c.delegate for c in ordered},
        )
        new: dict[tuple, Delegation] = {}
        changed: dict[tuple, Delegation] = {}
        history: list[DirectoryChange] = []
        touched: list[Delegation] = []
        audits: list[tuple[Delegation, str]] = []
        for change in ordered:
            key = (change.mailbox_id, change.delegate, change.access)
            row = rows.get(key)
            newer = row is None or change.at >= row.changed_at
            if row is None:
                row = Delegation(
                    tenant=tenant,
                    mailbox_id=change.mailbox_id,
                    delegate=change.delegate,
                    access=change.access,
                )
                rows[key] = new[key] = row
            elif key not in new:
                changed.setdefault(key, row)
            added = change.operation == Operation.ADDED
            if newer:
                if added and (row.removed_at is not None or row.added_at is None):
                    row.added_at = change.at
                if added:
                    row.removed_at = None
                else:
                    row.removed_at = change.at
                row.changed_at = change.at
                audits.append((row, change.operation))
            elif added and removals.in_last_lifetime(key, change.at, row.added_at, row.removed_at):
                row.added_at = change.at  # a late, older grant of the current (or last) lifetime
            history.append(
                _history(
                    tenant,
                    change.mailbox_id,
                    Kind.DELEGATION,
                    change.delegate,
                    change.operation,
                    change.at,
                    {"delegate": change.delegate, "access": change.access},
                    applied=newer,
                    event_id=change.event_id,
                    source=source,
                    recorded_at=now,
                )
            )
            touched.append(row)
        _save_directory_batch(
            Delegation,
            new,
            changed,
            ["added_at", "changed_at", "removed_at"],
            history,
            [
                (
                    row,
                    op,
                    {**row.state(), "present": op != Operation.ADDED},
                    {**row.state(), "present": op == Operation.ADDED},
                )
                for row, op in audits
            ],
            audit_prefix="mailboxes.delegation",
            source=source,
            actor=actor,
            tenant=tenant,
        )
    return touched


def apply_delegation_change(
    mailbox: Mailbox,
    *,
    delegate: str,
    access: str,
    operation: str,
    actor: AbstractBaseUser | None,
    at: datetime | None = None,
    source: str = CONSOLE,
    event_id: str = "",
) -> Delegation:
    """Add or remove one delegation of ``mailbox`` (remediation: ``operation="removed"``; undo: "added")."""
    cleaned = normalize_address(delegate)
    if not is_valid_address(cleaned):
        raise DirectoryError(f"{delegate!r} is not a valid email address.")
    change = DelegationChange(mailbox.pk, cleaned, access, operation, at or timezone.now(), event_id)
    return apply_delegation_changes(mailbox.tenant, [change], source=source, actor=actor)[0]
