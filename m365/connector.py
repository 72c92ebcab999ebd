"""The Microsoft 365 remediation connector: the second implementation of the connector interface
(:mod:`investigations.connectors`), chosen for tenants of kind ``m365`` through ``CONNECTOR_KINDS``.

Where Microsoft offers an API the action is carried out in the tenant through Graph, then mirrored in the
console's directory (the same history rows the built-in connector writes): remove an inbox rule (and undo:
recreate it), soft-delete messages (move them to Recoverable Items, keeping each move's new message id and
source folder; undo: move them back), revoke sign-in sessions, reset the password (a random one, changed at
next sign-in, then sessions revoked), disable the account (and undo: enable it). Where it offers none (a
mailbox's SMTP forwarding and mailbox permissions are Exchange PowerShell only; an account synchronised from
on-premises Active Directory is changed there) the action ends in *Manual step required* with the exact step.

A request that changes something and is not idempotent (a message move, a rule's creation) is never sent again
blindly after a timeout: the connector reads the state to learn whether it happened.

Every Graph call (method, URL, status, ``request-id``) is returned with the result (``details["calls"]``) or
attached to the error (``calls``), and kept on the action.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from core.models import Tenant
from investigations.connectors import (
    BuiltinConnector,
    ConnectorResult,
    TargetState,
)
from investigations.exceptions import ConnectorError, TransientConnectorError
from investigations.models import RemediationAction
from mailflow.models import MessageEvent

from .client import GraphError, M365Client, NotRetried
from .exceptions import M365Error
from .mapping import graph_rule_state
from .models import DirectoryUser, M365Connection, MovedMessage

PLATFORM_NOTE = "in Microsoft 365"
RECOVERABLE_ITEMS = "recoverableitemsdeletions"

# Exchange Online PowerShell: what Graph cannot do.
MANUAL = {
    "turn_off_forwarding": (
        "Microsoft Graph has no API for a mailbox's SMTP forwarding. In Exchange Online PowerShell run: "
        "Set-Mailbox -Identity {address} -ForwardingSmtpAddress $null -ForwardingAddress $null "
        "-DeliverToMailboxAndForward $false "
        "(or Exchange admin center → Recipients → Mailboxes → {address} → Mail flow → Email forwarding "
        "→ off)."
    ),
    "remove_delegation": (
        "Microsoft Graph has no API for mailbox permissions. In Exchange Online PowerShell run: {commands}"
    ),
    "block_sender": (
        "Microsoft Graph has no API to stop a mailbox sending. In Exchange Online PowerShell run: "
        'New-TransportRule -Name "SOC console: block {address}" -From {address} '
        "-SentToScope NotInOrganization -RejectMessageEnhancedStatusCode 5.7.1 "
        '-RejectMessageReasonText "Sending blocked by the security team" '
        "(Microsoft Defender portal → Restricted entities blocks all sending instead). When the user is "
        'released in the console, run Remove-TransportRule -Identity "SOC console: block {address}".'
    ),
    "undo_soft_delete_messages": (
        "Microsoft Graph cannot restore from Recoverable Items. In Exchange Online PowerShell, for each "
        "recipient: Restore-RecoverableItems -Identity <recipient> -FilterItemType IPM.Note "
        '-SubjectContains "{subject}" (messages of action #{action}).'
    ),
}
# A user synchronised from on-premises Active Directory (Entra Connect) is governed there: Graph refuses
# changes to its password and sign-in state, and the next sync would undo them anyway.
ON_PREMISES = {
    "force_password_reset": (
        "{address} is synchronised from on-premises Active Directory, where its password is governed. In "
        "Active Directory Users and Computers reset the password to a random one and tick “User must change "
        "password at next logon” (PowerShell: Set-ADAccountPassword -Identity <sAMAccountName> -Reset; "
        "Set-ADUser -Identity <sAMAccountName> -ChangePasswordAtLogon $true), then let Entra Connect sync."
    ),
    "disable_account": (
        "{address} is synchronised from on-premises Active Directory, where its sign-in state is governed. "
        "Disable the account there (PowerShell: Disable-ADAccount -Identity <sAMAccountName>) and let "
        "Entra Connect sync."
    ),
}
# What a 403 Authorization_RequestDenied on passwordProfile / accountEnabled means for an app-only caller.
SENSITIVE_ROLE = (
    "Microsoft refused to change {what} of {address} (403 Authorization_RequestDenied). These are "
    "sensitive attributes: besides the application permission, the app's service principal needs the "
    "User Administrator directory role (Privileged Authentication Administrator when {address} holds an "
    "admin role). Assign it in Entra admin center → Roles & admins, then retry."
)
TEMPORARY_PASSWORD_LENGTH = 32
ACCESS_COMMANDS = {
    "full_access": "Remove-MailboxPermission -Identity {address} -User {delegate} -AccessRights FullAccess "
    "-InheritanceType All -Confirm:$false",
    "send_as": "Remove-RecipientPermission -Identity {address} -Trustee {delegate} -AccessRights SendAs "
    "-Confirm:$false",
    "send_on_behalf": 'Set-Mailbox -Identity {address} -GrantSendOnBehalfTo @{{Remove="{delegate}"}}',
}


def temporary_password() -> str:
    """A random password meeting Entra ID's complexity rules (upper, lower, digit, symbol; 8-256 chars)."""
    alphabet = string.ascii_letters + string.digits + "!#$%*+-=?@^_"
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(TEMPORARY_PASSWORD_LENGTH))
        if (
            any(c.islower() for c in password)
            and any(c.isupper() for c in password)
            and any(c.isdigit() for c in password)
            and any(not c.isalnum() for c in password)
        ):
            return password


def _with_calls(method: Callable[..., Any]) -> Callable[..., Any]:
    """Attach the Graph calls made so far to a connector error, so the action keeps them even on failure."""

    def wrapper(self: M365Connector, *args: Any) -> Any:
        try:
            return method(self, *args)
        except (ConnectorError, TransientConnectorError, M365Error) as exc:
            exc.calls = self.calls()
            if isinstance(exc, M365Error) and not isinstance(exc, ConnectorError):
                raise ConnectorError(str(exc)) from exc
            raise

    return wrapper


class M365Connector(BuiltinConnector):
    kind = "m365"
    label = "Microsoft 365"

    def __init__(self, tenant: Tenant) -> None:
        super().__init__(tenant)
        try:
            self.connection = M365Connection.objects.get(tenant=tenant)
        except M365Connection.DoesNotExist as exc:
            raise ConnectorError(
                f"{tenant} is a Microsoft 365 tenant but no connection is registered for it."
            ) from exc
        if not self.connection.enabled:
            raise ConnectorError(f"The Microsoft 365 connection of {tenant} is disabled.")
        self.client = M365Client(self.connection)

    # -- the interface, with the calls kept

    read_state = _with_calls(BuiltinConnector.read_state)
    apply = _with_calls(BuiltinConnector.apply)
    undo = _with_calls(BuiltinConnector.undo)

    def calls(self) -> list[dict[str, Any]]:
        return self.client.calls_since(0)

    def _done(self, sentence: str, **details: Any) -> ConnectorResult:
        return ConnectorResult(
            message=f"{sentence} {PLATFORM_NOTE}.", details={**details, "calls": self.calls()}
        )

    def _user_id(self, address: str) -> str:
        """Graph's object id of a mailbox's user (else its address, which Graph accepts as well)."""
        graph_id = (
            DirectoryUser.objects.filter(connection=self.connection, address=address.lower())
            .values_list("graph_id", flat=True)
            .first()
        )
        return graph_id or address

    def _users_url(self, address: str, path: str = "") -> str:
        return self.client.graph(f"/users/{self._user_id(address)}{path}")

    # -- inbox rules

    def _graph_rule(self, action: RemediationAction) -> dict[str, Any] | None:
        mailbox = self._mailbox(action, lock=False)
        rule = self._rule(action, mailbox)
        rule_id = action.target.get("rule_id")
        name = rule.name if rule else ""
        url = self._users_url(mailbox.address, "/mailFolders/inbox/messageRules")
        for page, _ in self.client.pages(url):
            for item in page:
                if item.get("id") == rule_id or (name and item.get("displayName") == name):
                    return item
        return None

    def read_remove_inbox_rule(self, action: RemediationAction) -> TargetState:
        found = self._graph_rule(action)
        if found is None:
            return TargetState(True, {}, "the inbox rule no longer exists in the mailbox")
        state = {"graph_rule": found, **graph_rule_state(found), "rule_id": action.target.get("rule_id")}
        return TargetState(False, state, f"inbox rule “{found.get('displayName')}” exists in the mailbox")

    def apply_remove_inbox_rule(self, action: RemediationAction) -> ConnectorResult:
        found = self._graph_rule(action)
        mailbox = self._mailbox(action)
        if found is not None:
            url = self._users_url(mailbox.address, f"/mailFolders/inbox/messageRules/{found['id']}")
            try:
                self.client.request("DELETE", url)
            except GraphError as exc:
                if exc.status != 404:  # gone meanwhile: the goal is reached
                    raise
        if (rule := self._rule(action, mailbox)) is not None and rule.is_present:
            super().apply_remove_inbox_rule(action)
        name = (found or {}).get("displayName") or action.target_label
        return self._done(f"Inbox rule “{name}” of {mailbox.address} removed")

    def undo_remove_inbox_rule(self, action: RemediationAction, prior: dict[str, Any]) -> ConnectorResult:
        graph_rule = prior.get("graph_rule")
        if not graph_rule:
            raise ConnectorError("The rule's Microsoft 365 definition was not recorded: nothing to restore.")
        mailbox = self._mailbox(action)
        body = {
            key: graph_rule[key]
            for key in ("displayName", "sequence", "isEnabled", "conditions", "actions", "exceptions")
            if graph_rule.get(key) is not None
        }
        url = self._users_url(mailbox.address, "/mailFolders/inbox/messageRules")
        # Creating a rule is not idempotent: a rule of that name already there (an earlier attempt whose
        # answer was lost) is the undo done, not a reason to create a second one.
        present = any(
            item.get("displayName") == body.get("displayName")
            for page, _ in self.client.pages(url)
            for item in page
        )
        if not present:
            self.client.request("POST", url, json_body=body)
        super().undo_remove_inbox_rule(action, prior)
        return self._done(f"Inbox rule “{body.get('displayName')}” of {mailbox.address} recreated")

    # -- account state

    def _synced(self, address: str) -> bool:
        user = self.client.get_json(self._users_url(address), params={"$select": "id,onPremisesSyncEnabled"})
        return bool(user.get("onPremisesSyncEnabled"))

    def _patch_user(self, action: RemediationAction, body: dict[str, Any], what: str) -> str:
        mailbox = self._mailbox(action, lock=False)
        try:
            self.client.request("PATCH", self._users_url(mailbox.address), json_body=body)
        except GraphError as exc:
            if exc.status == 403 and exc.code == "Authorization_RequestDenied":
                raise ConnectorError(SENSITIVE_ROLE.format(what=what, address=mailbox.address)) from exc
            raise
        return mailbox.address

    def _on_premises_step(self, action: RemediationAction) -> ConnectorResult | None:
        address = self._mailbox(action, lock=False).address
        if not self._synced(address):
            return None
        return ConnectorResult.manual_step_required(
            ON_PREMISES[action.action_type].format(address=address),
            message="The account is governed by on-premises Active Directory: do it there.",
        )

    def read_disable_account(self, action: RemediationAction) -> TargetState:
        mailbox = self._mailbox(action, lock=False)
        user = self.client.get_json(self._users_url(mailbox.address), params={"$select": "id,accountEnabled"})
        enabled = bool(user.get("accountEnabled", True))
        if not enabled:
            return TargetState(True, {"account_enabled": False}, "the account is already disabled")
        return TargetState(False, {"account_enabled": True}, f"{mailbox.address} can sign in")

    def apply_disable_account(self, action: RemediationAction) -> ConnectorResult:
        if (step := self._on_premises_step(action)) is not None:
            return step
        address = self._patch_user(action, {"accountEnabled": False}, "the sign-in state")
        super().apply_disable_account(action)
        return self._done(f"Account {address} disabled (sign-in blocked)")

    def undo_disable_account(self, action: RemediationAction, prior: dict[str, Any]) -> ConnectorResult:
        enabled = bool(prior.get("account_enabled", True))
        address = self._patch_user(action, {"accountEnabled": enabled}, "the sign-in state")
        super().undo_disable_account(action, prior)
        return self._done(f"Account {address} {'enabled' if enabled else 'left disabled'} again")

    def apply_force_password_reset(self, action: RemediationAction) -> ConnectorResult:
        """As Microsoft's compromised-account guidance: a new random password (so whoever knows the old one
        cannot sign in, nor choose the next), changed by the user at next sign-in; then every session
        revoked, so tokens issued to the attacker stop working too. The password is not kept anywhere: the
        user gets a new one from the helpdesk (or self-service password reset)."""
        if (step := self._on_premises_step(action)) is not None:
            return step
        profile = {"forceChangePasswordNextSignIn": True, "password": temporary_password()}
        address = self._patch_user(action, {"passwordProfile": profile}, "the password")
        self._revoke(address)
        super().apply_force_password_reset(action)
        return self._done(
            f"Password of {address} reset to a random one nobody knows, to be changed at next sign-in, and "
            "every sign-in session revoked; the user gets a new password from the helpdesk or self-service "
            "password reset"
        )

    def _revoke(self, address: str) -> None:
        # Revoking twice is harmless: safe to send again after a timeout.
        self.client.request("POST", self._users_url(address, "/revokeSignInSessions"), idempotent=True)

    def apply_revoke_sessions(self, action: RemediationAction) -> ConnectorResult:
        mailbox = self._mailbox(action, lock=False)
        self._revoke(mailbox.address)
        super().apply_revoke_sessions(action)
        return self._done(f"Every sign-in session (refresh token) of {mailbox.address} revoked")

    # -- messages

    def _copies_of(self, recipient: str, internet_id: str) -> list[dict[str, Any]] | None:
        """The recipient's messages with this Message-ID (id, folder); ``None`` when the mailbox is gone."""
        url = self._users_url(recipient, "/messages")
        escaped = internet_id.replace("'", "''")
        params = {"$filter": f"internetMessageId eq '{escaped}'", "$select": "id,parentFolderId"}
        try:
            return [m for page, _ in self.client.pages(url, params=params) for m in page]
        except GraphError as exc:
            if exc.status == 404:  # the recipient's mailbox is gone
                return None
            raise

    def _move(self, recipient: str, message_id: str, destination: str) -> dict[str, Any] | None:
        """Move one message; the moved copy (its new id) or ``None`` when it is gone. A move is not
        idempotent (the id changes): after a timeout it is not sent again but checked — gone from its old id
        means moved."""
        url = self._users_url(recipient, f"/messages/{message_id}/move")
        try:
            return self.client.request("POST", url, json_body={"destinationId": destination}).json()
        except NotRetried:
            return None
        except GraphError as exc:
            if exc.status == 404:
                return None
            raise

    def apply_soft_delete_messages(self, action: RemediationAction) -> ConnectorResult:
        """Move every internal recipient's copy to Recoverable Items; each move's new message id and source
        folder are kept (:class:`~m365.models.MovedMessage`) so an undo can move it back."""
        copies = sorted(self._message_copies(action) - self._already_deleted(self._message_copies(action)))
        ids = dict(
            MessageEvent.objects.filter(tenant=self.tenant, event_id__in={e for e, _ in copies}).values_list(
                "event_id", "internet_message_id"
            )
        )
        moved = missing = 0
        rows: list[MovedMessage] = []
        for event_id, recipient in copies:
            internet_id = ids.get(event_id) or ""
            found = self._copies_of(recipient, internet_id) if internet_id else None
            if not found:
                missing += 1
                continue
            for message in found:
                if message.get("parentFolderId") == RECOVERABLE_ITEMS:
                    # Moved by an earlier attempt whose answer never came: keep its id for the undo (the
                    # folder it came from is not known any more; the inbox is where mail lands).
                    if not MovedMessage.objects.filter(message_id=message["id"]).exists():
                        rows.append(self._moved(action, recipient, internet_id, message, "inbox"))
                        moved += 1
                    continue
                result = self._move(recipient, message["id"], RECOVERABLE_ITEMS)
                if result is None:
                    # No answer, or gone meanwhile: where is it now?
                    now = {m["id"]: m for m in self._copies_of(recipient, internet_id) or []}
                    if message["id"] in now:
                        raise TransientConnectorError(
                            f"Moving a message of {recipient} got no answer and it has not moved; will retry."
                        )
                    result = next((m for m in now.values() if m["id"] not in {f["id"] for f in found}), None)
                    if result is None:
                        missing += 1
                        continue
                source = str(message.get("parentFolderId") or "inbox")
                rows.append(self._moved(action, recipient, internet_id, result, source))
                moved += 1
        MovedMessage.objects.bulk_create(rows)
        super().apply_soft_delete_messages(action)
        sentence = f"{moved} message copies moved to Recoverable Items"
        if missing:
            sentence += f" ({missing} copies were no longer in their recipient's mailbox)"
        return self._done(sentence, moved=moved, missing=missing)

    def _moved(
        self, action: RemediationAction, recipient: str, internet_id: str, moved: dict[str, Any], source: str
    ) -> MovedMessage:
        return MovedMessage(
            connection=self.connection,
            action_id=action.pk,
            recipient=recipient,
            internet_message_id=internet_id,
            message_id=str(moved.get("id") or ""),
            source_folder_id=source,
        )

    def undo_soft_delete_messages(self, action: RemediationAction, prior: dict[str, Any]) -> ConnectorResult:
        """Move each copy this action moved back to the folder it came from, by the id the move gave it."""
        rows = list(
            MovedMessage.objects.filter(
                connection=self.connection, action_id=action.pk, restored_at__isnull=True
            )
        )
        if not rows and not MovedMessage.objects.filter(action_id=action.pk).exists():
            # Moved before the new ids were kept: Graph cannot find them by their old ids.
            return ConnectorResult.manual_step_required(
                MANUAL["undo_soft_delete_messages"].format(subject=action.target_label, action=action.pk)
            )
        restored = gone = 0
        for row in rows:
            if self._move(row.recipient, row.message_id, row.source_folder_id) is None:
                gone += 1
            else:
                restored += 1
            row.restored_at = timezone.now()
            row.save(update_fields=["restored_at"])
        super().undo_soft_delete_messages(action, prior)
        sentence = f"{restored} message copies moved back to the folders they came from"
        if gone:
            sentence += f" ({gone} were no longer in Recoverable Items)"
        return self._done(sentence, restored=restored, gone=gone)

    # -- what Graph cannot do

    def apply_turn_off_forwarding(self, action: RemediationAction) -> ConnectorResult:
        address = self._mailbox(action, lock=False).address
        return ConnectorResult.manual_step_required(MANUAL["turn_off_forwarding"].format(address=address))

    def apply_remove_delegation(self, action: RemediationAction) -> ConnectorResult:
        mailbox = self._mailbox(action, lock=False)
        rows = self._delegations(action, mailbox)
        commands = "; ".join(
            ACCESS_COMMANDS[row.access].format(address=mailbox.address, delegate=row.delegate) for row in rows
        )
        return ConnectorResult.manual_step_required(MANUAL["remove_delegation"].format(commands=commands))

    def sender_block_step(self, action: RemediationAction) -> str:
        """Exchange Online does not see the console's restrictions (Graph has no API for an outbound sender
        block): the exact transport rule to create now, and to remove when the user is released."""
        address = self._mailbox(action, lock=False).address
        return MANUAL["block_sender"].format(address=address)

    undo_turn_off_forwarding = None  # type: ignore[assignment]  # None: _handler() finds no undo
    undo_remove_delegation = None  # type: ignore[assignment]  # None: _handler() finds no undo
