"""Builders of fake Microsoft 365 tenant data: small dicts shaped like what Microsoft returns, for the lists
and maps of :class:`tests.m365.fake_m365.FakeM365` (re-exported there: ``fake_m365.user(...)``)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from .fake_m365_graph import graph_time


def _iso(at: datetime) -> str:
    return graph_time(at if at.tzinfo else at.replace(tzinfo=UTC))


def _user_id(upn: str) -> str:
    """A stable object id per UPN, so sign_in() and user() agree on ``userId``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"user:{upn.lower()}"))


def domain(name: str, *, verified: bool = True, default: bool = False) -> dict[str, Any]:
    """A Graph domain."""
    return {
        "id": name,
        "authenticationType": "Managed",
        "isAdminManaged": True,
        "isDefault": default,
        "isInitial": name.endswith(".onmicrosoft.com"),
        "isRoot": True,
        "isVerified": verified,
        "supportedServices": ["Email", "OfficeCommunicationsOnline"],
    }


def user(
    upn: str, *, display_name: str | None = None, department: str = "", guest: bool = False
) -> dict[str, Any]:
    """A Graph user with a mailbox (``mail`` = the UPN); an empty department is null, as in Graph."""
    local = upn.split("@")[0]
    given, _, surname = local.replace("_", ".").partition(".")
    return {
        "id": _user_id(upn),
        "userPrincipalName": upn,
        "mail": upn,
        "displayName": display_name
        or " ".join(part.capitalize() for part in local.replace("_", ".").split(".")),
        "givenName": given.capitalize() or None,
        "surname": surname.capitalize() or None,
        "department": department or None,
        "userType": "Guest" if guest else "Member",
        "accountEnabled": True,
        "businessPhones": [],
        "jobTitle": None,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": None,
    }


def trace(
    sender: str,
    recipient: str,
    at: datetime,
    *,
    subject: str = "",
    status: str = "Delivered",
    message_id: str | None = None,
    size: int = 4096,
    from_ip: str | None = "198.51.100.7",
    to_ip: str | None = None,
    trace_id: str | None = None,
) -> dict[str, Any]:
    """A Graph exchangeMessageTrace: one recipient's row of a message (see :func:`traces` for all of them,
    sharing the message's trace ``id``)."""
    return {
        "id": trace_id or str(uuid.uuid4()),
        "messageId": message_id or f"<{uuid.uuid4().hex}@{sender.split('@')[-1]}>",
        "senderAddress": sender,
        "recipientAddress": recipient,
        "subject": subject,
        "status": status,
        "receivedDateTime": _iso(at),
        "size": size,
        "fromIP": from_ip,
        "toIP": to_ip,
    }


def traces(sender: str, recipients: Iterable[str], at: datetime, **fields: Any) -> list[dict[str, Any]]:
    """The trace rows of one message: a row per recipient, one trace ``id`` and Message-ID for all."""
    fields.setdefault("message_id", f"<{uuid.uuid4().hex}@{sender.split('@')[-1]}>")
    trace_id = str(uuid.uuid4())
    return [trace(sender, recipient, at, trace_id=trace_id, **fields) for recipient in recipients]


def audit_time(at: datetime) -> str:
    """An audit record's CreationTime: UTC without a zone, with Exchange's 7 fractional digits."""
    at = at.astimezone(UTC) if at.tzinfo else at
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond:06d}0"


def rule_object_id(upn: str, rule_name: str, tenant_domain: str = "contoso.onmicrosoft.com") -> str:
    """An inbox rule's ObjectId as Exchange Online writes it: the mailbox as its user's object id."""
    return (
        f"EURPR05A003.PROD.OUTLOOK.COM/Microsoft Exchange Hosted Organizations/{tenant_domain}/"
        f"{_user_id(upn)}\\{rule_name}"
    )


def sign_in(
    upn: str,
    at: datetime,
    *,
    ip: str,
    country: str = "NL",
    client_app: str = "Browser",
    error_code: int = 0,
    user_agent: str | None = None,
    interactive: bool = True,
) -> dict[str, Any]:
    """A Graph signIn (``userId`` matches :func:`user` for the same UPN). A non-interactive one (a client
    redeeming a refresh token) is only listed by Graph beta, filtered on ``signInEventTypes``."""
    return {
        "id": str(uuid.uuid4()),
        "createdDateTime": _iso(at),
        "userDisplayName": upn.split("@")[0],
        "userPrincipalName": upn,
        "userId": _user_id(upn),
        "appId": "00000002-0000-0ff1-ce00-000000000000",
        "appDisplayName": "Office 365 Exchange Online",
        "ipAddress": ip,
        "clientAppUsed": client_app,
        "userAgent": user_agent,
        "isInteractive": interactive,
        "signInEventTypes": ["interactiveUser" if interactive else "nonInteractiveUser"],
        "location": {"city": None, "state": None, "countryOrRegion": country, "geoCoordinates": None},
        "status": {
            "errorCode": error_code,
            "failureReason": "Other." if error_code else None,
            "additionalDetails": None,
        },
    }


def audit(
    operation: str,
    user: str,
    at: datetime,
    *,
    object_id: str,
    parameters: dict[str, Any],
    client_ip: str = "203.0.113.5:50312",
    result: str = "True",
    properties: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An Audit.Exchange record (``CreationTime`` without a zone with 7 fractional digits, ``ClientIP`` with
    the client's port, parameter values as strings, as Exchange writes them). ``properties`` become
    ``OperationProperties`` (what Outlook's ``UpdateInboxRules`` carries instead of Parameters)."""
    record = {
        "CreationTime": audit_time(at),
        "Id": str(uuid.uuid4()),
        "Operation": operation,
        "OrganizationId": "",
        "RecordType": 1,
        "ResultStatus": result,
        "UserKey": _user_id(user),
        "UserType": 2,
        "Version": 1,
        "Workload": "Exchange",
        "ClientIP": client_ip,
        "ObjectId": object_id,
        "UserId": user,
        "ExternalAccess": False,
        "Parameters": [{"Name": name, "Value": _exchange_value(value)} for name, value in parameters.items()],
    }
    if properties is not None:
        record["OperationProperties"] = [
            {"Name": name, "Value": _exchange_value(value)} for name, value in properties.items()
        ]
        record["RecordType"] = 2
        record["MailboxOwnerUPN"] = user
        record["MailboxGuid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailbox:{user.lower()}"))
    return record


def _exchange_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return str(value)


def rule(
    rule_id: str,
    name: str,
    *,
    forward_to: Iterable[str] = (),
    redirect_to: Iterable[str] = (),
    delete: bool = False,
    move_to: str | None = None,
    mark_as_read: bool = False,
    subject_contains: Iterable[str] = (),
    sequence: int = 1,
    enabled: bool = True,
) -> dict[str, Any]:
    """A Graph messageRule. Like Graph, ``conditions`` and ``actions`` hold only what is set: read them with
    ``.get()``."""
    actions: dict[str, Any] = {}
    if forward_to := [_recipient(a) for a in forward_to]:
        actions["forwardTo"] = forward_to
    if redirect_to := [_recipient(a) for a in redirect_to]:
        actions["redirectTo"] = redirect_to
    if delete:
        actions["delete"] = True
    if mark_as_read:
        actions["markAsRead"] = True
    if move_to:
        actions["moveToFolder"] = move_to
    actions["stopProcessingRules"] = True
    conditions: dict[str, Any] = {}
    if subject_contains := list(subject_contains):
        conditions["subjectContains"] = subject_contains
    return {
        "id": rule_id,
        "displayName": name,
        "sequence": sequence,
        "isEnabled": enabled,
        "hasError": False,
        "isReadOnly": False,
        "conditions": conditions,
        "actions": actions,
    }


def _recipient(address: str) -> dict[str, Any]:
    return {"emailAddress": {"name": address, "address": address}}


def message(
    internet_message_id: str, *, subject: str = "", folder: str = "inbox", sender: str = ""
) -> dict[str, Any]:
    """A Graph message in ``folder`` (a well-known name or folder id)."""
    return {
        "id": "AAMk" + secrets.token_urlsafe(24),
        "internetMessageId": internet_message_id,
        "subject": subject,
        "parentFolderId": folder,
        "from": {"emailAddress": {"name": sender, "address": sender}} if sender else None,
        "receivedDateTime": graph_time(datetime.now(UTC)),
    }
