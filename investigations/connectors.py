"""The connector interface (DESIGN section 6) and the built-in connector.

An executor never changes a mailbox by itself: it asks the tenant's *connector*, chosen by
``tenant.connector_kind`` through ``settings.CONNECTOR_KINDS`` (kind -> dotted path), so this app never
imports a platform connector such as ``m365``. For each action type a connector can

- ``read_state(action)``: what the target looks like now (``done`` when there is nothing left to do, and the
  JSON-ready state an undo would restore);
- ``apply(action)``: carry the action out, returning a :class:`ConnectorResult` (applied, or a manual step the
  operator must do by hand, worded exactly);
- ``undo(action, prior_state)``: put the target back as ``prior_state`` says (reversible types only).

A retryable failure (timeout, throttling) raises :class:`TransientConnectorError`; the executor retries it
with backoff. Anything else that cannot succeed raises :class:`ConnectorError` and the action fails.

``block_sender`` is never a connector's business: it goes through the restriction services, which the policy
service enforces, whatever the connector (see :mod:`investigations.action_services`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from core.models import Tenant
from mailboxes import services as directory
from mailboxes.addresses import domain_of
from mailboxes.models import AcceptedDomain, Delegation, InboxRule, Mailbox, MailboxForwarding
from mailflow.models import MessageEvent

from .exceptions import ConnectorError, ConnectorNotConfigured
from .models import MailCluster, RemediationAction, SoftDeletedMessage

Type = RemediationAction.Type

# Where a change made by an investigation comes from, in the directory history.
HISTORY_SOURCE = "investigation"
BUILTIN_NOTE = "applied in the console; no mail platform connected"


@dataclass(frozen=True)
class TargetState:
    """The target as the connector sees it before acting.

    ``done``: nothing is left to do (the executor completes the action as "already done"). ``state``:
    JSON-ready values, saved as the action's ``prior_state`` so an undo can restore them. ``summary``: one
    sentence.
    """

    done: bool
    state: dict[str, Any]
    summary: str


@dataclass(frozen=True)
class ConnectorResult:
    """What ``apply`` / ``undo`` did: a sentence for the action's result, or the exact manual step."""

    message: str
    manual_step: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def manual(self) -> bool:
        return bool(self.manual_step)

    @classmethod
    def manual_step_required(cls, step: str, message: str = "") -> ConnectorResult:
        return cls(
            message=message or "The mail platform has no API for this: do it by hand.", manual_step=step
        )


# The exact step an operator takes by hand when a connector cannot do an action through an API.
MANUAL_STEPS: dict[str, str] = {
    Type.SOFT_DELETE_MESSAGES: "In the mail platform, search the internal recipients' mailboxes for the "
    "messages of cluster “{target}” and move them to Recoverable Items (soft delete).",
    Type.TURN_OFF_FORWARDING: "In the mail platform's admin center, open {address} → Mail flow settings → "
    "Email forwarding, and turn forwarding off.",
    Type.REMOVE_INBOX_RULE: "Sign in to {address}'s mailbox settings (or use the admin tools) and delete the "
    "inbox rule “{target}”.",
    Type.REMOVE_DELEGATION: "In the mail platform's admin center, open {address} → Mailbox permissions, and "
    "remove {target}.",
    Type.FORCE_PASSWORD_RESET: "In the identity provider, reset {address}'s password and require a new one "
    "at next sign-in.",
    Type.REVOKE_SESSIONS: "In the identity provider, revoke every sign-in session (refresh tokens) of "
    "{address}.",
    Type.DISABLE_ACCOUNT: "In the identity provider, block sign-in for {address}.",
}


@runtime_checkable
class RemediationConnector(Protocol):
    """What an executor needs from a connector (one instance per tenant)."""

    def read_state(self, action: RemediationAction) -> TargetState: ...

    def apply(self, action: RemediationAction) -> ConnectorResult: ...

    def undo(self, action: RemediationAction, prior_state: dict[str, Any]) -> ConnectorResult: ...


class Connector:
    """A base for connectors: dispatches to ``read_<type>``, ``apply_<type>`` and ``undo_<type>`` methods for
    the action types a subclass supports; for an unsupported type ``apply`` returns the manual step
    (``MANUAL_STEPS``) and ``undo`` refuses.

    Handlers run inside the executor's transaction with the action row locked: a local write (the built-in
    connector) commits or rolls back with the action's new status; a remote call cannot be rolled back, so a
    platform connector's ``apply`` must be safe to repeat (the executor reads the state first every time).
    """

    kind: ClassVar[str] = ""
    label: ClassVar[str] = ""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant

    def _handler(self, verb: str, action: RemediationAction) -> Callable | None:
        return getattr(self, f"{verb}_{action.action_type}", None)

    def read_state(self, action: RemediationAction) -> TargetState:
        """The target's current state; an unsupported type is reported as unknown (never "done")."""
        handler = self._handler("read", action)
        if handler is None:
            return TargetState(done=False, state={}, summary="The connector cannot read this target.")
        return handler(action)

    def apply(self, action: RemediationAction) -> ConnectorResult:
        handler = self._handler("apply", action)
        if handler is None:
            return ConnectorResult.manual_step_required(manual_step_for(action))
        return handler(action)

    def undo(self, action: RemediationAction, prior_state: dict[str, Any]) -> ConnectorResult:
        handler = self._handler("undo", action)
        if handler is None:
            raise ConnectorError(
                f"The {self.label or self.kind} connector cannot undo “{action.get_action_type_display()}”."
            )
        return handler(action, prior_state)


def manual_step_for(action: RemediationAction) -> str:
    """The manual step for ``action``, with its mailbox and target filled in."""
    template = MANUAL_STEPS.get(action.action_type, "Carry out “{kind}” on {target} by hand.")
    return template.format(
        address=action.investigation.mailbox.address,
        target=action.target_label,
        kind=action.get_action_type_display(),
    )


def connector_for(tenant: Tenant) -> RemediationConnector:
    """The connector of the tenant's kind (``settings.CONNECTOR_KINDS``, imported by dotted path)."""
    path = settings.CONNECTOR_KINDS.get(tenant.connector_kind)
    if not path:
        raise ConnectorNotConfigured(
            f"No connector is configured for the kind “{tenant.connector_kind}” of {tenant}; "
            "set it in CONNECTOR_KINDS."
        )
    connector = import_string(path)(tenant)
    if not isinstance(connector, RemediationConnector):
        raise ConnectorNotConfigured(f"{path} is not a remediation connector.")
    return connector


# ------------------------------------------------------------------------------------------------ built-in


def _not_before(moment: datetime | None) -> datetime:
    """Now, or ``moment`` when the directory holds a change stamped later (clock skew in telemetry): the
    directory applies the newest change by event time, so a remediation must not look older than what it
    fixes.
    """
    now = timezone.now()
    return max(now, moment) if moment is not None else now


def _result(sentence: str, **details: Any) -> ConnectorResult:
    return ConnectorResult(message=f"{sentence} — {BUILTIN_NOTE}.", details=details)


class BuiltinConnector(Connector):
    """Applies every action to the directory and records held here, through :mod:`mailboxes.services` (so each
    change is directory history with source "investigation"); soft-deleted messages are recorded as
    :class:`~investigations.models.SoftDeletedMessage` rows. What the simulator and the demo use.

    Target keys read from ``action.target``: ``mailbox_id`` (default: the investigation's user),
    ``cluster_id`` or ``event_ids`` (soft delete), ``rule_id`` (inbox rule), ``delegate`` and ``access``
    (delegation; without ``access``, every permission of that delegate).
    """

    kind = "builtin"
    label = "built-in"

    # -- helpers

    def _mailbox(self, action: RemediationAction, *, lock: bool = True) -> Mailbox:
        mailbox_id = action.target.get("mailbox_id") or action.investigation.mailbox_id
        queryset = Mailbox.objects.select_for_update() if lock else Mailbox.objects.all()
        try:
            return queryset.select_related("tenant").get(pk=mailbox_id, tenant_id=self.tenant.pk)
        except Mailbox.DoesNotExist as exc:
            raise ConnectorError("The mailbox this action targets no longer exists.") from exc

    # -- turn off forwarding

    def read_turn_off_forwarding(self, action: RemediationAction) -> TargetState:
        mailbox = self._mailbox(action, lock=False)
        row = MailboxForwarding.objects.filter(mailbox=mailbox).first()
        if row is None or not row.forward_to:
            return TargetState(True, {"forward_to": None, "keep_copy": False}, "forwarding is already off")
        return TargetState(False, row.state(), f"{mailbox.address} forwards to {row.forward_to}")

    def apply_turn_off_forwarding(self, action: RemediationAction) -> ConnectorResult:
        mailbox = self._mailbox(action)
        row = MailboxForwarding.objects.get(mailbox=mailbox)
        forward_to = row.forward_to
        directory.set_forwarding(
            mailbox, forward_to=None, actor=None, at=_not_before(row.changed_at), source=HISTORY_SOURCE
        )
        return _result(f"Forwarding of {mailbox.address} to {forward_to} turned off")

    def undo_turn_off_forwarding(self, action: RemediationAction, prior: dict[str, Any]) -> ConnectorResult:
        mailbox = self._mailbox(action)
        forward_to = prior.get("forward_to")
        if not forward_to:
            raise ConnectorError("No forwarding was recorded before this action: nothing to restore.")
        row = MailboxForwarding.objects.filter(mailbox=mailbox).first()
        directory.set_forwarding(
            mailbox,
            forward_to=forward_to,
            keep_copy=bool(prior.get("keep_copy")),
            actor=None,
            at=_not_before(row.changed_at if row else None),
            source=HISTORY_SOURCE,
        )
        return _result(f"Forwarding of {mailbox.address} to {forward_to} restored")

    # -- remove an inbox rule

    def _rule(self, action: RemediationAction, mailbox: Mailbox) -> InboxRule | None:
        rule_id = action.target.get("rule_id")
        if not rule_id:
            raise ConnectorError("This action does not name the inbox rule to remove.")
        return InboxRule.objects.filter(mailbox=mailbox, rule_id=rule_id).first()

    def read_remove_inbox_rule(self, action: RemediationAction) -> TargetState:
        mailbox = self._mailbox(action, lock=False)
        rule = self._rule(action, mailbox)
        if rule is None or not rule.is_present:
            return TargetState(True, {}, "the inbox rule no longer exists")
        return TargetState(False, rule.state(), f"inbox rule “{rule.name or rule.rule_id}” exists")

    def apply_remove_inbox_rule(self, action: RemediationAction) -> ConnectorResult:
        mailbox = self._mailbox(action)
        rule = self._rule(action, mailbox)
        if rule is None:
            raise ConnectorError("The inbox rule is unknown to the directory.")
        directory.apply_inbox_rule_change(
            mailbox,
            rule_id=rule.rule_id,
            operation="deleted",
            actor=None,
            at=_not_before(rule.changed_at),
            source=HISTORY_SOURCE,
        )
        return _result(f"Inbox rule “{rule.name or rule.rule_id}” of {mailbox.address} removed")

    def undo_remove_inbox_rule(self, action: RemediationAction, prior: dict[str, Any]) -> ConnectorResult:
        mailbox = self._mailbox(action)
        rule_id = prior.get("rule_id") or action.target.get("rule_id")
        if not rule_id:
            raise ConnectorError("No inbox rule was recorded before this action: nothing to restore.")
        rule = InboxRule.objects.filter(mailbox=mailbox, rule_id=rule_id).first()
        directory.apply_inbox_rule_change(
            mailbox,
            rule_id=rule_id,
            operation="created",
            actor=None,
            at=_not_before(rule.changed_at if rule else None),
            name=prior.get("name", ""),
            conditions=prior.get("conditions") or {},
            actions=prior.get("actions") or {},
            enabled=bool(prior.get("enabled", True)),
            source=HISTORY_SOURCE,
        )
        return _result(f"Inbox rule “{prior.get('name') or rule_id}” of {mailbox.address} restored")

    # -- remove a delegation

    def _delegations(self, action: RemediationAction, mailbox: Mailbox) -> list[Delegation]:
        delegate = (action.target.get("delegate") or "").strip().lower()
        if not delegate:
            raise ConnectorError("This action does not name the delegate to remove.")
        rows = Delegation.objects.present().for_mailbox(mailbox).filter(delegate=delegate)
        if access := action.target.get("access"):
            rows = rows.filter(access=access)
        return list(rows.order_by("access"))

    def read_remove_delegation(self, action: RemediationAction) -> TargetState:
        mailbox = self._mailbox(action, lock=False)
        rows = self._delegations(action, mailbox)
        if not rows:
            return TargetState(True, {"delegations": []}, "the delegate no longer has this permission")
        state = {"delegations": [row.state() for row in rows]}
        granted = ", ".join(row.get_access_display().lower() for row in rows)
        return TargetState(False, state, f"{rows[0].delegate} has {granted} on {mailbox.address}")

    def apply_remove_delegation(self, action: RemediationAction) -> ConnectorResult:
        mailbox = self._mailbox(action)
        rows = self._delegations(action, mailbox)
        for row in rows:
            directory.apply_delegation_change(
                mailbox,
                delegate=row.delegate,
                access=row.access,
                operation="removed",
                actor=None,
                at=_not_before(row.changed_at),
                source=HISTORY_SOURCE,
            )
        removed = ", ".join(row.get_access_display().lower() for row in rows)
        return _result(f"{removed.capitalize()} of {rows[0].delegate} on {mailbox.address} removed")

    def undo_remove_delegation(self, action: RemediationAction, prior: dict[str, Any]) -> ConnectorResult:
        mailbox = self._mailbox(action)
        restored = []
        for entry in prior.get("delegations") or []:
            current = Delegation.objects.filter(
                mailbox=mailbox, delegate=entry["delegate"], access=entry["access"]
            ).first()
            directory.apply_delegation_change(
                mailbox,
                delegate=entry["delegate"],
                access=entry["access"],
                operation="added",
                actor=None,
                at=_not_before(current.changed_at if current else None),
                source=HISTORY_SOURCE,
            )
            restored.append(f"{entry['access'].replace('_', ' ')} for {entry['delegate']}")
        if not restored:
            raise ConnectorError("No delegation was recorded before this action: nothing to restore.")
        return _result(f"Restored {', '.join(restored)} on {mailbox.address}")

    # -- account state

    def read_disable_account(self, action: RemediationAction) -> TargetState:
        mailbox = self._mailbox(action, lock=False)
        state = {"account_enabled": mailbox.account_enabled}
        if not mailbox.account_enabled:
            return TargetState(True, state, "the account is already disabled")
        return TargetState(False, state, f"{mailbox.address} can sign in")

    def apply_disable_account(self, action: RemediationAction) -> ConnectorResult:
        mailbox = self._mailbox(action)
        directory.update_account_state(mailbox, actor=None, account_enabled=False, source=HISTORY_SOURCE)
        return _result(f"Account {mailbox.address} disabled (sign-in blocked)")

    def undo_disable_account(self, action: RemediationAction, prior: dict[str, Any]) -> ConnectorResult:
        mailbox = self._mailbox(action)
        enabled = bool(prior.get("account_enabled", True))
        directory.update_account_state(mailbox, actor=None, account_enabled=enabled, source=HISTORY_SOURCE)
        return _result(f"Account {mailbox.address} {'enabled' if enabled else 'left disabled'} again")

    def read_force_password_reset(self, action: RemediationAction) -> TargetState:
        mailbox = self._mailbox(action, lock=False)
        state = {"password_reset_required": mailbox.password_reset_required}
        if mailbox.password_reset_required:
            return TargetState(True, state, "a new password is already required at next sign-in")
        return TargetState(False, state, f"{mailbox.address} keeps its password")

    def apply_force_password_reset(self, action: RemediationAction) -> ConnectorResult:
        mailbox = self._mailbox(action)
        directory.update_account_state(
            mailbox, actor=None, password_reset_required=True, source=HISTORY_SOURCE
        )
        return _result(f"{mailbox.address} must choose a new password at next sign-in")

    def read_revoke_sessions(self, action: RemediationAction) -> TargetState:
        mailbox = self._mailbox(action, lock=False)
        revoked = mailbox.sessions_revoked_at
        state = {"sessions_revoked_at": revoked.isoformat() if revoked else None}
        # Sessions revoked since the action was proposed leave nothing to do; older revocations do not count.
        if revoked is not None and revoked >= action.proposed_at:
            return TargetState(True, state, f"sessions were already revoked at {revoked:%Y-%m-%d %H:%M} UTC")
        return TargetState(False, state, f"{mailbox.address} may have live sessions")

    def apply_revoke_sessions(self, action: RemediationAction) -> ConnectorResult:
        mailbox = self._mailbox(action)
        directory.update_account_state(
            mailbox, actor=None, sessions_revoked_at=timezone.now(), source=HISTORY_SOURCE
        )
        return _result(f"Every session of {mailbox.address} revoked")

    # -- soft delete messages

    def _message_copies(self, action: RemediationAction) -> set[tuple[str, str]]:
        """(event id, internal recipient) of every stored message the action names, sent by its mailbox."""
        event_ids = action.target.get("event_ids")
        if event_ids is None and action.target.get("cluster_id") is not None:
            cluster = MailCluster.objects.filter(
                pk=action.target["cluster_id"], investigation_id=action.investigation_id
            ).first()
            if cluster is None:
                raise ConnectorError("The mail cluster this action names no longer exists.")
            event_ids = cluster.event_ids
        if not event_ids:
            raise ConnectorError("This action names no message to delete.")
        mailbox = self._mailbox(action, lock=False)
        accepted = AcceptedDomain.objects.domains_of(self.tenant)
        copies: set[tuple[str, str]] = set()
        messages = MessageEvent.objects.filter(tenant=self.tenant, sender=mailbox, event_id__in=event_ids)
        for event_id, recipients in messages.values_list("event_id", "recipients").iterator(chunk_size=2000):
            for recipient in recipients or []:
                if domain_of(recipient) in accepted:
                    copies.add((event_id, recipient.lower()))
        return copies

    def _already_deleted(self, copies: set[tuple[str, str]]) -> set[tuple[str, str]]:
        event_ids = {event_id for event_id, _ in copies}
        held = SoftDeletedMessage.objects.active().filter(tenant=self.tenant, event_id__in=event_ids)
        return set(held.values_list("event_id", "recipient")) & copies

    def read_soft_delete_messages(self, action: RemediationAction) -> TargetState:
        copies = self._message_copies(action)
        left = copies - self._already_deleted(copies)
        messages = len({event_id for event_id, _ in left})
        state = {"messages": messages, "copies": len(left)}
        if not left:
            return TargetState(
                True, state, "no stored message of this set is left in an internal recipient's mailbox"
            )
        return TargetState(False, state, f"{messages} message(s) in {len(left)} internal mailbox copies")

    def apply_soft_delete_messages(self, action: RemediationAction) -> ConnectorResult:
        with transaction.atomic():
            copies = self._message_copies(action)
            left = sorted(copies - self._already_deleted(copies))
            now = timezone.now()
            SoftDeletedMessage.objects.bulk_create(
                [
                    SoftDeletedMessage(
                        tenant=self.tenant,
                        action=action,
                        event_id=event_id,
                        recipient=recipient,
                        deleted_at=now,
                    )
                    for event_id, recipient in left
                ],
                batch_size=2000,
                ignore_conflicts=True,
            )
        messages = len({event_id for event_id, _ in left})
        recipients = len({recipient for _, recipient in left})
        return _result(
            f"{messages} message(s) soft-deleted from {recipients} internal recipient(s)",
            messages=messages,
            copies=len(left),
        )

    def undo_soft_delete_messages(self, action: RemediationAction, prior: dict[str, Any]) -> ConnectorResult:
        restored = (
            SoftDeletedMessage.objects.active().filter(action=action).update(restored_at=timezone.now())
        )
        return _result(f"{restored} soft-deleted message copies restored to their recipients")
