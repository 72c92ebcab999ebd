"""Microsoft 365 records -> ingest contract v1 events (DESIGN section 4).

Each ``*_event(s)`` function maps one platform record (or a page) and raises :class:`RecordError` for a
record it cannot read; the pull stores the rest of the page and reports the record. Event ids are derived
from the platform's ids (``m365:<kind>:<id>``), so reading a page again is a duplicate, never a second event.
Telemetry the console has no use for (mail received from outside, guests' sign-ins) is skipped, not an
error: the mapping returns ``None``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from mailboxes.addresses import normalize_address as normalize

# Graph signIn.clientAppUsed -> ingest client_app.
CLIENT_APPS = {
    "browser": "browser",
    "imap4": "imap",
    "imap": "imap",
    "pop3": "pop",
    "pop": "pop",
    "authenticated smtp": "smtp",
    "smtp": "smtp",
    "exchange activesync": "eas",
}
# exchangeMessageTrace.status -> verdict, where the trace carries one (Delivered etc. carry none).
TRACE_VERDICTS = {"filteredasspam": "spam", "quarantined": "spam"}
# Folder ids Graph returns for inbox rules' moveToFolder are opaque; these well-known names are kept as is.
RULE_TEXT_CONDITIONS = {
    "subjectContains": "subject_contains",
    "bodyContains": "body_contains",
    "bodyOrSubjectContains": "body_or_subject_contains",
    "senderContains": "from",
    "headerContains": "header_contains",
    "recipientContains": "recipient_contains",
}
# messageRulePredicates holding recipients (emailAddress objects) -> ingest condition of addresses (the
# ingest's "from" condition is text, so a sender's address and a part of it land together).
RULE_ADDRESS_CONDITIONS = {"fromAddresses": "from", "sentToAddresses": "sent_to"}


class RecordError(ValueError):
    """A platform record the connector cannot map; the message names what is wrong (never a secret)."""


Resolve = Callable[[str], str | None]


def _need(record: dict[str, Any], *names: str) -> list[Any]:
    values = []
    for name in names:
        value = record.get(name)
        if value in (None, ""):
            raise RecordError(f"has no {name}")
        values.append(value)
    return values


def parse_time(value: Any) -> datetime:
    """An ISO 8601 time as Graph (``…Z``) or the Management API (no offset, UTC) writes it."""
    if not isinstance(value, str) or not value:
        raise RecordError(f"has a time that is not a string: {value!r}")
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise RecordError(f"has an unreadable time {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _address(value: Any) -> str:
    if not isinstance(value, str) or "@" not in value:
        raise RecordError(f"has no usable address ({value!r})")
    return normalize(value.removeprefix("smtp:").removeprefix("SMTP:"))


# ------------------------------------------------------------------------------------------------ directory


def verified_domains(records: Iterable[dict[str, Any]]) -> list[str]:
    return sorted({str(r["id"]).lower() for r in records if r.get("isVerified") and r.get("id")})


def is_member_with_mailbox(record: dict[str, Any]) -> bool:
    """Members with a mail address; guests (userType Guest, ``#EXT#`` names) and contacts never."""
    upn = str(record.get("userPrincipalName") or "")
    return record.get("userType", "Member") == "Member" and bool(record.get("mail")) and "#EXT#" not in upn


def mailbox_event(record: dict[str, Any], at: datetime) -> dict[str, Any]:
    """A ``mailbox`` event for a member user; the id changes only when the mapped attributes do."""
    graph_id, mail = _need(record, "id", "mail")
    fields = {
        "address": _address(mail),
        "display_name": str(record.get("displayName") or "")[:200],
        "department": str(record.get("department") or "")[:200],
    }
    return {"type": "mailbox", "id": f"m365:user:{graph_id}:{digest(fields)}", "time": iso(at), **fields}


# ------------------------------------------------------------------------------------------------ mail


def hold_back_last_second(
    records: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows to map now, rows to carry to the next page): the rows received in the same second as the
    page's last row may belong to a message whose other recipients are on the next page."""
    if not records:
        return [], []
    try:
        last = _second(records[-1])
    except RecordError:
        return records, []
    now: list[dict[str, Any]] = []
    later: list[dict[str, Any]] = []
    for record in records:
        try:
            same = _second(record) == last
        except RecordError:
            same = False
        (later if same else now).append(record)
    if not now:  # a whole page in one second (a burst): mapped as it is rather than carried for ever
        return later, []
    return now, later


def _second(record: dict[str, Any]) -> datetime:
    return parse_time(record.get("receivedDateTime")).replace(microsecond=0)


def trace_event_id(internet_message_id: str, sender: str, received: datetime) -> str:
    """A message's event id from what every recipient row of the trace shares (the trace row ``id`` too, but
    it does not tell two sends of one Message-ID apart): the Message-ID, the sender and the second it was
    received. Stable across pages, pulls and the overlap re-read."""
    key = f"{internet_message_id}|{sender}|{iso(received.replace(microsecond=0))}"
    return f"m365:trace:{hashlib.sha256(key.encode()).hexdigest()[:32]}"


def message_events(
    records: list[dict[str, Any]], is_internal: Callable[[str], bool]
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """``message`` events for the sent mail of a page of message trace, one per message: the trace has a
    row per recipient, and the rows of one message (same Message-ID, sender and received second) are one
    event with every recipient. Mail whose sender is outside the tenant is skipped. Returns (events,
    [(record id, error)])."""
    errors: list[tuple[str, str]] = []
    grouped: dict[tuple[str, str, datetime], dict[str, Any]] = {}
    for index, record in enumerate(records):
        record_id = str(record.get("id") or f"#{index}")
        try:
            _, sender, recipient, received = _need(
                record, "id", "senderAddress", "recipientAddress", "receivedDateTime"
            )
            sender, recipient = _address(sender), _address(recipient)
            at = parse_time(received)
        except RecordError as exc:
            errors.append((record_id, f"message trace record {record_id} {exc}"))
            continue
        if not is_internal(sender):
            continue
        message_id = str(record.get("messageId") or record_id)
        key = (message_id, sender, at.replace(microsecond=0))
        event = grouped.get(key)
        if event is None:
            event = grouped[key] = {
                "type": "message",
                "id": trace_event_id(message_id, sender, at),
                "time": at,
                "sender": sender,
                "recipients": [],
                "subject": str(record.get("subject") or "")[:1000],
            }
            if record.get("messageId"):
                event["internet_message_id"] = str(record["messageId"])[:998]
            if record.get("fromIP"):
                event["client_ip"] = record["fromIP"]
            if isinstance(record.get("size"), int) and record["size"] >= 0:
                event["size"] = record["size"]
        event["time"] = min(event["time"], at)
        if recipient not in event["recipients"]:
            event["recipients"].append(recipient)
            event["recipients"].sort()
        verdict = TRACE_VERDICTS.get(str(record.get("status") or "").replace(" ", "").lower())
        if verdict:
            event["verdict"] = verdict
    events = [{**event, "time": iso(event["time"])} for event in grouped.values()]
    return events, errors


def sign_in_event(record: dict[str, Any], resolve: Resolve) -> dict[str, Any] | None:
    """A ``sign_in`` event; ``None`` for a user without a mailbox here (a guest, a service account)."""
    record_id, created, upn = _need(record, "id", "createdDateTime", "userPrincipalName")
    address = resolve(str(upn))
    if address is None:
        return None
    ip = record.get("ipAddress")
    if not ip:
        raise RecordError("has no ipAddress")
    status = record.get("status") or {}
    if not isinstance(status, dict):
        raise RecordError("has a status that is not an object")
    event = {
        "type": "sign_in",
        "id": f"m365:signin:{record_id}",
        "time": iso(parse_time(created)),
        "user": address,
        "ip": ip,
        "client_app": CLIENT_APPS.get(str(record.get("clientAppUsed") or "").strip().lower(), "other"),
        "result": "success" if status.get("errorCode", 0) == 0 else "failure",
    }
    country = ((record.get("location") or {}).get("countryOrRegion") or "").strip()
    if country:
        event["country"] = country.upper()
    if record.get("userAgent"):
        event["user_agent"] = str(record["userAgent"])[:1000]
    return event


# ------------------------------------------------------------------------------------------------ inbox rules


def _recipients(value: Any) -> list[str]:
    addresses = []
    for item in value or []:
        address = ((item or {}).get("emailAddress") or {}).get("address") if isinstance(item, dict) else item
        if address:
            addresses.append(_address(address))
    return addresses


def graph_rule_state(rule: dict[str, Any], folder_names: dict[str, str] | None = None) -> dict[str, Any]:
    """The ingest ``inbox_rule`` state (name, conditions, actions, enabled) of a Graph messageRule."""
    conditions_in = rule.get("conditions") or {}
    actions_in = rule.get("actions") or {}
    if not isinstance(conditions_in, dict) or not isinstance(actions_in, dict):
        raise RecordError("has conditions or actions that are not objects")
    conditions = {
        ours: list(conditions_in[theirs])
        for theirs, ours in RULE_TEXT_CONDITIONS.items()
        if conditions_in.get(theirs)
    }
    for theirs, ours in RULE_ADDRESS_CONDITIONS.items():
        if addresses := _recipients(conditions_in.get(theirs)):
            conditions[ours] = [*conditions.get(ours, []), *addresses]
    actions: dict[str, Any] = {}
    # Forwarding as an attachment forwards all the same; a permanent delete deletes.
    forward = _recipients(actions_in.get("forwardTo")) + _recipients(actions_in.get("forwardAsAttachmentTo"))
    if forward:
        actions["forward_to"] = forward
    if redirect := _recipients(actions_in.get("redirectTo")):
        actions["redirect_to"] = redirect
    if actions_in.get("delete") or actions_in.get("permanentDelete"):
        actions["delete"] = True
    if actions_in.get("markAsRead"):
        actions["mark_as_read"] = True
    if folder := actions_in.get("moveToFolder"):
        actions["move_to_folder"] = (folder_names or {}).get(folder, folder)
    return {
        "name": str(rule.get("displayName") or "")[:255],
        "conditions": conditions,
        "actions": actions,
        "enabled": bool(rule.get("isEnabled", True)),
    }


# ------------------------------------------------------------------------------------------------ audit log


class ReadRules(Exception):
    """An audit record says a mailbox's inbox rules changed but not how in a form the console can follow (an
    Outlook / EWS ``UpdateInboxRules``, or a rule named only by Exchange's numeric id): the puller re-reads
    that mailbox's rules from Graph instead."""

    def __init__(self, mailbox: str) -> None:
        super().__init__(mailbox)
        self.mailbox = mailbox


def _parameters(record: dict[str, Any], key: str = "Parameters") -> dict[str, Any]:
    """A record's ``Parameters`` (or ``OperationProperties``) by lower-cased name: Exchange writes the names
    as the admin typed them (``-forwardto``, ``-ForwardTo``)."""
    params = record.get(key) or []
    if not isinstance(params, list):
        raise RecordError(f"has {key} that are not a list")
    return {
        str(p.get("Name")).lstrip("-").lower(): p.get("Value")
        for p in params
        if isinstance(p, dict) and p.get("Name")
    }


def identity_parts(identity: Any) -> tuple[str, str]:
    """(mailbox part, rule part) of an Exchange identity: ``alice@contoso.com\\Rule``, ``Alice\\1234``, or an
    ``ObjectId`` such as ``NAMPR01A001.PROD.OUTLOOK.COM/Microsoft Exchange Hosted Organizations/
    contoso.onmicrosoft.com/<user GUID>\\Rule`` (the mailbox part is then the last path segment)."""
    text = str(identity or "").strip()
    mailbox, _, rule = text.partition("\\")
    return mailbox.rstrip("/").rsplit("/", 1)[-1].strip(), rule.strip()


def _words(value: Any) -> list[str]:
    if not value:
        return []
    return [w.strip() for w in str(value).replace(";", ",").split(",") if w.strip()]


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in {"true", "1", "$true", "yes"}


def _rule_from_parameters(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    conditions: dict[str, Any] = {}
    for theirs, ours in (
        ("subjectcontainswords", "subject_contains"),
        ("bodycontainswords", "body_contains"),
        ("subjectorbodycontainswords", "body_or_subject_contains"),
        ("from", "from"),
        ("fromaddresscontainswords", "from"),
        ("sentto", "sent_to"),
        ("headercontainswords", "header_contains"),
    ):
        if words := _words(params.get(theirs)):
            conditions[ours] = [*conditions.get(ours, []), *words]
    actions: dict[str, Any] = {}
    forward_words = _words(params.get("forwardto")) + _words(params.get("forwardasattachmentto"))
    forward = [_address(a) for a in forward_words]
    if forward:
        actions["forward_to"] = forward
    if redirect := [_address(a) for a in _words(params.get("redirectto"))]:
        actions["redirect_to"] = redirect
    if any(_truthy(params.get(name)) for name in ("deletemessage", "softdeletemessage", "permanentdelete")):
        actions["delete"] = True
    if _truthy(params.get("markasread")):
        actions["mark_as_read"] = True
    if folder := params.get("movetofolder"):
        # "alias:\RSS Feeds" -> "RSS Feeds"
        actions["move_to_folder"] = str(folder).split("\\")[-1].lstrip(":") or str(folder)
    return conditions, actions


RULE_OPERATIONS = {"new-inboxrule": "created", "set-inboxrule": "updated", "remove-inboxrule": "deleted"}
PERMISSION_OPERATIONS = {
    "add-mailboxpermission": ("added", "User"),
    "remove-mailboxpermission": ("removed", "User"),
    "add-recipientpermission": ("added", "Trustee"),
    "remove-recipientpermission": ("removed", "Trustee"),
}
ACCESS_RIGHTS = {"fullaccess": "full_access", "sendas": "send_as"}
# Outlook and EWS change rules in one go; the record's OperationProperties name the rule but not all of it.
OUTLOOK_RULES = "updateinboxrules"
AUDIT_OPERATIONS = {*RULE_OPERATIONS, *PERMISSION_OPERATIONS, "set-mailbox", OUTLOOK_RULES}


def audit_events(
    record: dict[str, Any], resolve: Resolve, rule_id_for: Callable[[str, str], str]
) -> list[dict[str, Any]]:
    """Events of one ``Audit.Exchange`` record: an inbox rule change, a forwarding change, a permission
    change; ``[]`` for operations the console does not follow and for failed operations.

    ``resolve`` turns an Exchange identity (address, UPN, alias, display name or the user's object id, which
    real ``ObjectId`` values end with) into a mailbox address; ``rule_id_for(mailbox, rule name)`` gives the
    id the console already knows the rule by (rules read from Graph are keyed by Graph id, the audit log only
    names them). Raises :class:`ReadRules` when the record cannot say what the rule is now.
    """
    operation = str(record.get("Operation") or "").lower()
    if operation not in AUDIT_OPERATIONS:
        return []
    if str(record.get("ResultStatus") or "True").lower() in {"false", "failed"}:
        return []
    record_id, created = _need(record, "Id", "CreationTime")
    at = iso(parse_time(created))
    params = _parameters(record)
    base = f"m365:audit:{record_id}"

    if operation == OUTLOOK_RULES:
        # A mailbox audit record: whose mailbox is MailboxOwnerUPN (or the ObjectId's user).
        owner = _mailbox_of(
            resolve, record.get("MailboxOwnerUPN"), record.get("ObjectId"), record.get("UserId")
        )
        raise ReadRules(owner)

    if operation in RULE_OPERATIONS:
        return [_rule_event(record, params, operation, base, at, resolve, rule_id_for)]

    if operation == "set-mailbox":
        return _forwarding_events(record, params, base, at, resolve)
    return _permission_events(record, params, operation, base, at, resolve)


def _mailbox_of(resolve: Resolve, *identities: Any) -> str:
    """The tenant's mailbox the first resolvable identity names."""
    for identity in identities:
        if identity and (address := resolve(identity_parts(identity)[0])):
            return address
    named = next((i for i in identities if i), None)
    raise RecordError(f"names a mailbox that is not one of the tenant's ({named!r})")


def _rule_event(
    record: dict[str, Any],
    params: dict[str, Any],
    operation: str,
    base: str,
    at: str,
    resolve: Resolve,
    rule_id_for: Callable[[str, str], str],
) -> dict[str, Any]:
    """The inbox rule event of a New-, Set-, Enable-, Disable- or Remove-InboxRule record."""
    identity = params.get("identity") or record.get("ObjectId") or ""
    # The mailbox whose rule it is: the -Mailbox parameter, the identity's mailbox part, the ObjectId
    # (the user's object id); the acting user (an admin, a delegate) only as a last resort.
    mailbox = _mailbox_of(
        resolve, params.get("mailbox"), identity, record.get("ObjectId"), record.get("UserId")
    )
    rule_part = identity_parts(identity)[1] or identity_parts(record.get("ObjectId"))[1]
    if rule_part.isdigit():
        # Exchange's numeric rule id (Set-/Remove-InboxRule -Identity 'alice\\1234567890'; a -Name
        # with it is a rename): nothing to know the rule by; what the mailbox holds now tells.
        raise ReadRules(mailbox)
    name = str(params.get("name") or rule_part).strip()
    if not name:
        raise RecordError("names no inbox rule")
    event: dict[str, Any] = {
        "type": "inbox_rule",
        "id": base,
        "time": at,
        "mailbox": mailbox,
        "operation": RULE_OPERATIONS[operation],
        "rule_id": rule_id_for(mailbox, name),
        "name": name[:255],
    }
    if operation != "remove-inboxrule":
        conditions, actions = _rule_from_parameters(params)
        event.update(conditions=conditions, actions=actions)
        if "enabled" in params:
            event["enabled"] = _truthy(params["enabled"])
    return event


def _forwarding_events(
    record: dict[str, Any], params: dict[str, Any], base: str, at: str, resolve: Resolve
) -> list[dict[str, Any]]:
    """The forwarding event of a Set-Mailbox record that touches forwarding (else none)."""
    keys = {"forwardingsmtpaddress", "forwardingaddress", "delivertomailboxandforward"}
    if not keys & params.keys():
        return []
    mailbox = _mailbox_of(resolve, params.get("identity"), record.get("ObjectId"))
    target = params.get("forwardingsmtpaddress") or params.get("forwardingaddress")
    forward_to = None
    if target:
        forward_to = resolve(str(target).removeprefix("smtp:").removeprefix("SMTP:")) or _address(target)
    return [
        {
            "type": "forwarding",
            "id": base,
            "time": at,
            "mailbox": mailbox,
            "forward_to": forward_to,
            "keep_copy": _truthy(params.get("delivertomailboxandforward")),
        }
    ]


def _permission_events(
    record: dict[str, Any], params: dict[str, Any], operation: str, base: str, at: str, resolve: Resolve
) -> list[dict[str, Any]]:
    """One delegation event per access right an Add- or Remove-MailboxPermission / RecipientPermission
    record grants or removes."""
    verb, delegate_key = PERMISSION_OPERATIONS[operation]
    mailbox = _mailbox_of(resolve, params.get("identity"), record.get("ObjectId"))
    delegate_identity = params.get(delegate_key.lower())
    if not delegate_identity:
        raise RecordError(f"names no {delegate_key}")
    delegate = resolve(str(delegate_identity)) or _address(delegate_identity)
    events = []
    for right in _words(params.get("accessrights")):
        access = ACCESS_RIGHTS.get(right.lower())
        if access:
            events.append(
                {
                    "type": "delegation",
                    "id": f"{base}:{access}",
                    "time": at,
                    "mailbox": mailbox,
                    "delegate": delegate,
                    "access": access,
                    "operation": verb,
                }
            )
    return events
