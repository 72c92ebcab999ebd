"""The self-hosted mail remediation connector (Postfix + Dovecot + Rspamd), chosen for tenants of kind
``mailstack`` through ``CONNECTOR_KINDS``. Every action is carried out on the real servers, then mirrored in
the console's directory (the same history rows the built-in connector writes):

- revoke sessions → ``doveadm kick`` of the user;
- disable account → the disabled-account key: Dovecot's authentication policy refuses every sign-in (IMAP,
  POP3, SMTP AUTH) and the Postfix policy service every send; open sessions are kicked. Undo lifts both;
- remove inbox rule / turn off forwarding → the user's active Sieve script rewritten without that rule (or
  without its unconditional redirects) and uploaded with ``sievePut``; the previous script is the saved state
  and undo uploads it again;
- soft-delete messages → ``doveadm move`` of the messages (by Message-ID) from each internal recipient's
  INBOX to the quarantine folder (``MAILSTACK_QUARANTINE_FOLDER``); undo moves them back;
- remove delegation → a manual step (the ``doveadm acl`` command to run where shared mailboxes are used);
- force password reset → the administrator's hook command (``MAILSTACK_PASSWORD_RESET_COMMAND``), else a
  manual step naming the passdb.

doveadm unreachable (down, refused, timed out) is a :class:`TransientConnectorError`: the action is retried
with backoff like any other; a refused key or a failed command is a :class:`ConnectorError` with its reason.
Every doveadm call (command, user, outcome) is kept on the action.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

from django.conf import settings

from core.models import Tenant
from investigations.connectors import (
    BuiltinConnector,
    ConnectorResult,
    TargetState,
)
from investigations.exceptions import ConnectorError, TransientConnectorError
from investigations.models import RemediationAction, SoftDeletedMessage
from mailboxes import services as directory
from mailboxes.models import MailboxForwarding
from mailflow.models import MessageEvent

from . import sieve, state
from .doveadm import EXIT_NO_MATCH, EXIT_UNKNOWN_USER, DoveadmClient, DoveadmError, Unreachable
from .exceptions import MailstackError
from .models import MailstackConnection
from .services import doveadm_for, set_account_disabled

PLATFORM_NOTE = "on the mail servers"
SIEVE_SCRIPT_NAME = "soc-console"
MANUAL_DELEGATION = (
    "Dovecot has no delegation the console can see. Where {address}'s folders are shared with ACLs, remove "
    "{delegate}'s rights on each shared folder: doveadm acl delete -u {address} <folder> user={delegate} "
    "(doveadm acl get -u {address} <folder> lists them)."
)
MANUAL_RESET_STEP = (
    "Set a new password for {address} in {passdb} and give it to the user through a trusted channel; "
    "then revoke the sessions (the console kicks them when you approve “Revoke sessions”)."
)


class _Calls:
    """The doveadm calls one connector made (kept on the action)."""

    def __init__(self, client: DoveadmClient) -> None:
        self.client = client
        self.log: list[dict[str, Any]] = []

    def call(self, name: str, params: dict[str, Any], *, allow: tuple[int, ...] = ()) -> Any:
        entry = {"api": "doveadm", "command": name, "user": params.get("user") or params.get("mask")}
        try:
            value = self.client.call(name, params, allow=allow)
        except DoveadmError as exc:
            self.log.append({**entry, "outcome": str(exc)})
            raise
        self.log.append({**entry, "outcome": "ok" if value is not None else "nothing to do"})
        return value


def _translated(method: Callable[..., Any]) -> Callable[..., Any]:
    """doveadm's errors as connector errors (unreachable → retried), with the calls made so far."""

    def wrapper(self: MailstackConnector, *args: Any) -> Any:
        try:
            return method(self, *args)
        except Unreachable as exc:
            transient = TransientConnectorError(str(exc))
            transient.calls = list(self.doveadm.log)
            raise transient from exc
        except (DoveadmError, MailstackError) as exc:
            error = ConnectorError(str(exc))
            error.calls = list(self.doveadm.log)
            raise error from exc
        except (ConnectorError, TransientConnectorError) as exc:
            exc.calls = list(self.doveadm.log)
            raise

    return wrapper


class MailstackConnector(BuiltinConnector):
    kind = "mailstack"
    label = "Postfix + Dovecot + Rspamd"

    def __init__(self, tenant: Tenant) -> None:
        super().__init__(tenant)
        connection = MailstackConnection.objects.filter(tenant=tenant).first()
        if connection is None:
            raise ConnectorError(f"{tenant} uses its own mail servers but none are connected.")
        if not connection.enabled:
            raise ConnectorError(f"The mail server connection of {tenant} is paused.")
        try:
            self.doveadm = _Calls(doveadm_for(connection))
        except MailstackError as exc:
            raise ConnectorError(str(exc)) from exc
        self.connection = connection

    read_state = _translated(BuiltinConnector.read_state)
    apply = _translated(BuiltinConnector.apply)
    undo = _translated(BuiltinConnector.undo)

    def _done(self, sentence: str, **details: Any) -> ConnectorResult:
        return ConnectorResult(
            message=f"{sentence} {PLATFORM_NOTE}.", details={**details, "calls": list(self.doveadm.log)}
        )

    # -- sessions and the account

    def _sessions(self, address: str) -> int:
        rows = self.doveadm.call("who", {}) or []
        return sum(int(row.get("connections") or 1) for row in rows if row.get("username") == address)

    def read_revoke_sessions(self, action: RemediationAction) -> TargetState:
        address = self._mailbox(action, lock=False).address
        sessions = self._sessions(address)
        return TargetState(False, {"open_sessions": sessions}, f"{address} has {sessions} open session(s)")

    def apply_revoke_sessions(self, action: RemediationAction) -> ConnectorResult:
        address = self._mailbox(action, lock=False).address
        kicked = self.doveadm.call("kick", {"mask": address}, allow=(EXIT_NO_MATCH,))
        super().apply_revoke_sessions(action)
        ended = "every open IMAP/POP3 session ended" if kicked else "no session was open"
        return self._done(f"Sessions of {address} revoked ({ended})")

    def read_disable_account(self, action: RemediationAction) -> TargetState:
        mailbox = self._mailbox(action, lock=False)
        disabled_here = bool(state.client().exists(state.disabled_key(self.tenant.slug, mailbox.address)))
        account_state = {"account_enabled": mailbox.account_enabled}
        if disabled_here and not mailbox.account_enabled:
            return TargetState(True, account_state, "the account is already disabled")
        return TargetState(False, {"account_enabled": True}, f"{mailbox.address} can sign in and send")

    def apply_disable_account(self, action: RemediationAction) -> ConnectorResult:
        mailbox = self._mailbox(action, lock=False)
        set_account_disabled(self.tenant, mailbox.address, True)
        self.doveadm.call("kick", {"mask": mailbox.address}, allow=(EXIT_NO_MATCH,))
        if mailbox.account_enabled:
            super().apply_disable_account(action)
        return self._done(
            f"Account {mailbox.address} disabled: Dovecot refuses its sign-ins, Postfix its mail, and its "
            "sessions were ended"
        )

    def undo_disable_account(self, action: RemediationAction, prior: dict[str, Any]) -> ConnectorResult:
        mailbox = self._mailbox(action, lock=False)
        enabled = bool(prior.get("account_enabled", True))
        set_account_disabled(self.tenant, mailbox.address, not enabled)
        super().undo_disable_account(action, prior)
        return self._done(f"Account {mailbox.address} {'enabled' if enabled else 'left disabled'} again")

    # -- Sieve

    def _active_script(self, address: str) -> tuple[str, str]:
        """(name, text) of the user's active Sieve script; ("", "") when there is none."""
        listed = self.doveadm.call("sieveList", {"user": address}) or []
        names = [row.get("script") for row in listed if row.get("active") == "ACTIVE"]
        if not names:
            return "", ""
        got = self.doveadm.call("sieveGet", {"user": address, "scriptname": names[0]}) or []
        return names[0], str(got[0].get("sieve script", "")) if got else ""

    def _put_script(self, address: str, name: str, text: str) -> None:
        self.doveadm.call(
            "sievePut",
            {"user": address, "scriptname": name or SIEVE_SCRIPT_NAME, "activate": True, "file": text},
        )

    def _parsed(self, address: str) -> tuple[str, str, sieve.Script]:
        name, text = self._active_script(address)
        try:
            return name, text, sieve.parse(text)
        except sieve.SieveParseError as exc:
            raise ConnectorError(f"The Sieve script “{name}” of {address} cannot be read: {exc}") from exc

    def read_turn_off_forwarding(self, action: RemediationAction) -> TargetState:
        address = self._mailbox(action, lock=False).address
        name, text, script = self._parsed(address)
        if script.forwarding is None:
            return TargetState(
                True, {"forward_to": None, "keep_copy": False}, "the Sieve script does not redirect"
            )
        forward_to, keep_copy = script.forwarding
        state = {"forward_to": forward_to, "keep_copy": keep_copy, "script_name": name, "script": text}
        return TargetState(False, state, f"{address}'s Sieve script “{name}” redirects to {forward_to}")

    def apply_turn_off_forwarding(self, action: RemediationAction) -> ConnectorResult:
        mailbox = self._mailbox(action)
        name, text, script = self._parsed(mailbox.address)
        if script.forwarding is None:
            return self._done(f"{mailbox.address}'s Sieve script no longer redirects")
        self._put_script(mailbox.address, name, sieve.rewrite_without(text, forwarding=True))
        row = MailboxForwarding.objects.filter(mailbox=mailbox).first()
        if row is not None and row.forward_to:
            super().apply_turn_off_forwarding(action)
        return self._done(
            f"Redirect of {mailbox.address} to {script.forwarding[0]} removed from its Sieve script “{name}”"
        )

    def undo_turn_off_forwarding(self, action: RemediationAction, prior: dict[str, Any]) -> ConnectorResult:
        mailbox = self._mailbox(action)
        if not prior.get("script"):
            raise ConnectorError("The Sieve script before this action was not recorded: nothing to restore.")
        self._put_script(mailbox.address, prior.get("script_name", ""), prior["script"])
        if prior.get("forward_to"):
            row = MailboxForwarding.objects.filter(mailbox=mailbox).first()
            if row is None or row.forward_to != prior["forward_to"]:
                super().undo_turn_off_forwarding(action, prior)
        return self._done(f"Sieve script “{prior.get('script_name')}” of {mailbox.address} restored")

    def read_remove_inbox_rule(self, action: RemediationAction) -> TargetState:
        address = self._mailbox(action, lock=False).address
        rule_id = action.target.get("rule_id") or ""
        name, text, script = self._parsed(address)
        rule = script.inbox_rules.get(rule_id)
        if rule is None:
            return TargetState(True, {}, "the rule is no longer in the Sieve script")
        state = {**rule.state(), "rule_id": rule_id, "script_name": name, "script": text}
        return TargetState(False, state, f"the Sieve script “{name}” of {address} has the rule")

    def apply_remove_inbox_rule(self, action: RemediationAction) -> ConnectorResult:
        mailbox = self._mailbox(action)
        rule_id = action.target.get("rule_id") or ""
        name, text, script = self._parsed(mailbox.address)
        if rule_id in script.inbox_rules:
            self._put_script(mailbox.address, name, sieve.rewrite_without(text, rule_ids={rule_id}))
        rule = self._rule(action, mailbox)
        if rule is not None and rule.is_present:
            super().apply_remove_inbox_rule(action)
        return self._done(f"Inbox rule “{action.target_label}” removed from {mailbox.address}'s Sieve script")

    def undo_remove_inbox_rule(self, action: RemediationAction, prior: dict[str, Any]) -> ConnectorResult:
        mailbox = self._mailbox(action)
        if not prior.get("script"):
            raise ConnectorError("The Sieve script before this action was not recorded: nothing to restore.")
        self._put_script(mailbox.address, prior.get("script_name", ""), prior["script"])
        super().undo_remove_inbox_rule(action, prior)
        return self._done(f"Sieve script “{prior.get('script_name')}” of {mailbox.address} restored")

    # -- messages

    def _moves(self, copies: list[tuple[str, str]], source: str, target: str) -> tuple[int, int]:
        ids = dict(
            MessageEvent.objects.filter(tenant=self.tenant, event_id__in={e for e, _ in copies}).values_list(
                "event_id", "internet_message_id"
            )
        )
        moved = missing = 0
        for event_id, recipient in copies:
            message_id = ids.get(event_id) or ""
            if not message_id:
                missing += 1
                continue
            query = ["mailbox", source, "header", "Message-ID", message_id]
            params = {"user": recipient, "destinationMailbox": target, "query": query}
            done = self.doveadm.call("move", params, allow=(EXIT_UNKNOWN_USER,))
            if done is None:
                missing += 1
            else:
                moved += 1
        return moved, missing

    def apply_soft_delete_messages(self, action: RemediationAction) -> ConnectorResult:
        copies = sorted(self._message_copies(action) - self._already_deleted(self._message_copies(action)))
        moved, missing = self._moves(copies, "INBOX", settings.MAILSTACK_QUARANTINE_FOLDER)
        super().apply_soft_delete_messages(action)
        sentence = (
            f"{len({e for e, _ in copies})} message(s) moved to {settings.MAILSTACK_QUARANTINE_FOLDER} in "
            f"{len({r for _, r in copies})} internal mailbox(es)"
        )
        if missing:
            sentence += f" ({missing} copies had no Message-ID or no mailbox here)"
        return self._done(sentence, moved=moved, missing=missing)

    def undo_soft_delete_messages(self, action: RemediationAction, prior: dict[str, Any]) -> ConnectorResult:
        held = list(
            SoftDeletedMessage.objects.active().filter(action=action).values_list("event_id", "recipient")
        )
        moved, _ = self._moves(sorted(held), settings.MAILSTACK_QUARANTINE_FOLDER, "INBOX")
        super().undo_soft_delete_messages(action, prior)
        return self._done(
            f"{len(held)} message copies moved back from {settings.MAILSTACK_QUARANTINE_FOLDER} to INBOX",
            moved=moved,
        )

    # -- what Dovecot has no API for

    def apply_remove_delegation(self, action: RemediationAction) -> ConnectorResult:
        mailbox = self._mailbox(action, lock=False)
        delegate = action.target.get("delegate") or "the delegate"
        return ConnectorResult.manual_step_required(
            MANUAL_DELEGATION.format(address=mailbox.address, delegate=delegate)
        )

    undo_remove_delegation = None  # type: ignore[assignment]  # None: _handler() finds no undo

    def apply_force_password_reset(self, action: RemediationAction) -> ConnectorResult:
        mailbox = self._mailbox(action, lock=False)
        command = settings.MAILSTACK_PASSWORD_RESET_COMMAND
        if not command:
            passdb = settings.MAILSTACK_PASSDB_DESCRIPTION
            return ConnectorResult.manual_step_required(
                MANUAL_RESET_STEP.format(address=mailbox.address, passdb=passdb)
            )
        try:
            done = subprocess.run(  # noqa: S603 - the administrator's configured command, no shell
                [*command.split(), mailbox.address], capture_output=True, text=True, timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConnectorError(f"The password reset command could not run: {exc}") from exc
        if done.returncode != 0:
            output = (done.stderr or done.stdout)[:300]
            raise ConnectorError(f"The password reset command exited with {done.returncode}: {output}")
        directory.update_account_state(
            mailbox, actor=None, password_reset_required=True, source="investigation"
        )
        return self._done(f"Password reset command run for {mailbox.address}")
