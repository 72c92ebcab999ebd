"""Writes of the directory: accepted domains, mailboxes, inbox rules, forwarding, delegations, account state.

Every change of a mailbox, rule, forwarding or delegation also appends a ``DirectoryChange`` row (the history
an investigation reads). State is the newest by *event time* (``at``): a change older than the state held is
recorded as history with ``applied=False`` and changes nothing. Changes are applied in event-time order,
whatever order they come in.

Each verb has a batch form (used by the ingest service: a few queries per batch, never one per event) and a
single-item form for the console and remediation (``turn off forwarding`` is ``set_forwarding(mailbox,
forward_to=None, actor=…)``). Changes made here (``source="console"``) or by a person (``actor``) are also
written to the audit trail; telemetry (ingest, connectors) is recorded in the history only.

Inbox rules, forwarding and delegations live in :mod:`mailboxes.mailbox_settings` (one "apply changes in event
order" skeleton for the three) and are re-exported here: ``mailboxes.services`` stays the one import path.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from core.models import Tenant
from core.services import record_audit

from .addresses import is_valid_domain
from .exceptions import DirectoryError
from .mailbox_settings import (
    BULK_BATCH_SIZE,
    CONSOLE,
    DELEGATION_OPERATIONS,
    RULE_OPERATIONS,
    DelegationChange,
    ForwardingChange,
    InboxRuleChange,
    Kind,
    Operation,
    apply_delegation_change,
    apply_delegation_changes,
    apply_inbox_rule_change,
    apply_inbox_rule_changes,
    history_row,
    is_audited,
    set_forwarding,
    set_forwardings,
    valid_address,
)
from .models import (
    AcceptedDomain,
    DirectoryChange,
    Mailbox,
)

MAILBOX_ATTRIBUTES = ("display_name", "department", "vip")


@dataclass(frozen=True, slots=True)
class MailboxChange:
    """A ``mailbox`` event (``attributes`` set, possibly empty) or a sighting of an address (``attributes``
    None): a sighting only creates the mailbox on first sight and lowers ``first_seen``.
    """

    address: str
    at: datetime
    attributes: dict[str, Any] | None = None
    event_id: str = ""


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
    actor: User | None,
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


def remove_accepted_domain(accepted_domain: AcceptedDomain, *, actor: User | None) -> None:
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
    tenant: Tenant, domains: Iterable[str], *, actor: User | None = None
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
    actor: User | None = None,
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

        def remember(
            mailbox: Mailbox, change: MailboxChange, operation: str, state: dict, *, applied: bool
        ) -> None:
            """Append the history row of one change."""
            history.append(
                history_row(
                    tenant,
                    mailbox,
                    Kind.MAILBOX,
                    mailbox.address,
                    operation,
                    change.at,
                    state,
                    applied=applied,
                    event_id=change.event_id,
                    source=source,
                    recorded_at=now,
                )
            )

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
                    remember(mailbox, change, Operation.CREATED, _mailbox_state(mailbox), applied=True)
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
            remember(mailbox, change, Operation.CREATED if first else Operation.UPDATED, state, applied=newer)
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
        if is_audited(source, actor):
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
    actor: User | None,
    at: datetime | None = None,
    display_name: str | None = None,
    department: str | None = None,
    vip: bool | None = None,
    source: str = CONSOLE,
    event_id: str = "",
) -> Mailbox:
    """Create or update one mailbox; attributes left None are kept. See :func:`upsert_mailboxes`."""
    cleaned = valid_address(address)
    attributes = {"display_name": display_name, "department": department, "vip": vip}
    change = MailboxChange(cleaned, at or timezone.now(), attributes, event_id)
    return upsert_mailboxes(tenant, [change], source=source, actor=actor)[cleaned]


def update_account_state(
    mailbox: Mailbox,
    *,
    actor: User | None,
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


__all__ = [
    "BULK_BATCH_SIZE",
    "CONSOLE",
    "DELEGATION_OPERATIONS",
    "RULE_OPERATIONS",
    "DelegationChange",
    "ForwardingChange",
    "InboxRuleChange",
    "MailboxChange",
    "add_accepted_domain",
    "apply_delegation_change",
    "apply_delegation_changes",
    "apply_inbox_rule_change",
    "apply_inbox_rule_changes",
    "declare_accepted_domains",
    "remove_accepted_domain",
    "set_forwarding",
    "set_forwardings",
    "sync_accepted_domains",
    "update_account_state",
    "upsert_mailbox",
    "upsert_mailboxes",
]
