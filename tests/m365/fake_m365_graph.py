"""Microsoft Graph endpoints of the fake Microsoft 365, and the request/reply types all its endpoints share.

The server, the identity platform and the tenant state live in :mod:`tests.m365.fake_m365`; this module
turns one parsed :class:`Request` into a :class:`Reply` the way the real services answer: the same paths,
field names, paging (``@odata.nextLink`` with a ``$skiptoken``; the ``NextPageUri`` response header), error
bodies and codes.
Handlers run with the fake's lock held, so they read and change the tenant state freely.
"""

from __future__ import annotations

import base64
import copy
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

if TYPE_CHECKING:
    from .fake_m365 import FakeM365

GRAPH = "https://graph.microsoft.com"
MANAGEMENT = "https://manage.office.com"

# Application roles accepted by each operation (any one of them is enough), as in Graph's permission tables.
DOMAIN_READ = {"Domain.Read.All", "Domain.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
USER_READ = {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
USER_WRITE = {"User.ReadWrite.All", "Directory.ReadWrite.All"}
USER_ENABLE = {"User.EnableDisableAccount.All"} | USER_WRITE
USER_PASSWORD = {"User-PasswordProfile.ReadWrite.All"} | USER_WRITE
USER_REVOKE = {"User.RevokeSessions.All"} | USER_WRITE
TRACE_READ = {"ExchangeMessageTrace.Read.All"}
SIGN_IN_READ = {"AuditLog.Read.All"}
RULES_READ = {"MailboxSettings.Read", "MailboxSettings.ReadWrite"}
RULES_WRITE = {"MailboxSettings.ReadWrite"}
MAIL_READ = {"Mail.Read", "Mail.ReadWrite"}
MAIL_WRITE = {"Mail.ReadWrite"}

# What GET /v1.0/users returns without $select (Graph's documented default set; beta returns everything).
USER_DEFAULT_PROPERTIES = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)


@dataclass
class Request:
    """One request as the handlers see it; ``claims`` and ``version`` are filled in on the way."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    request_id: str
    client_request_id: str
    claims: dict[str, Any] = field(default_factory=dict)
    version: str = "v1.0"


@dataclass
class Reply:
    """A JSON answer (``body`` None: no body at all, as for 204)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"


class ApiError(Exception):
    """Raised by a handler to answer an error reply."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


class FilterError(ValueError):
    """An OData $filter / query option the (fake) service cannot honour: answered 400, like Graph."""


# --------------------------------------------------------------------------------------------- time, ids


def now_utc() -> datetime:
    return datetime.now(UTC)


def parse_time(value: str) -> datetime:
    """An ISO 8601 time ("2026-01-01", "…T10:00", "…T10:00:00.123Z", "+02:00"); naive means UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def graph_time(moment: datetime) -> str:
    """Graph's DateTimeOffset rendering: UTC with a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exchange_id() -> str:
    """An opaque, URL-safe id in the style of Exchange item ids."""
    return "AAMk" + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=")


# --------------------------------------------------------------------------------------------- errors


def graph_error(req: Request, status: int, code: str, message: str, **headers: str) -> ApiError:
    """Graph's error shape, with the innerError Graph adds to every error."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": graph_time(now_utc()),
                "request-id": req.request_id,
                "client-request-id": req.client_request_id,
            },
        }
    }
    return ApiError(Reply(status, body, dict(headers)))


def require_roles(req: Request, accepted: set[str], *, mail: bool = False) -> None:
    """403 unless the token's roles include one of ``accepted`` (Exchange-backed APIs word it their way)."""
    if accepted & set(req.claims.get("roles") or ()):
        return
    if mail:
        raise graph_error(req, 403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
    raise graph_error(
        req, 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
    )


# --------------------------------------------------------------------------------------------- OData


@dataclass(frozen=True)
class Clause:
    field: str
    op: str
    value: Any


_CLAUSE = re.compile(
    r"\s*(?P<field>[A-Za-z][A-Za-z0-9_]*)\s+(?P<op>eq|ne|gt|ge|lt|le)\s+(?P<value>'(?:[^']|'')*'|[^\s']+)"
)
_AND = re.compile(r"\s+and\s+")
_OPERATOR_NAMES = {
    "eq": "Equal",
    "ne": "NotEqual",
    "gt": "GreaterThan",
    "ge": "GreaterThanOrEqual",
    "lt": "LessThan",
    "le": "LessThanOrEqual",
}
_EDM = {"str": "Edm.String", "datetime": "Edm.DateTimeOffset", "bool": "Edm.Boolean"}


def parse_filter(text: str, fields: dict[str, tuple[str, set[str]]]) -> list[Clause]:
    """Clauses of ``field op literal [and …]`` for the fields an endpoint supports: name -> (kind, operators).

    Anything else (``or``, functions, lambdas, an unsupported field or operator, a literal of the wrong type)
    raises :class:`FilterError`, as the real services answer 400 rather than ignoring a filter.
    """
    clauses: list[Clause] = []
    position = 0
    text = text.strip()
    while True:
        match = _CLAUSE.match(text, position)
        if match is None:
            raise FilterError(f"Invalid filter clause: {text}")
        name, op, raw = match["field"], match["op"], match["value"]
        if name not in fields:
            raise FilterError(f"Unsupported or invalid query filter clause specified for property '{name}'.")
        kind, operators = fields[name]
        if op not in operators:
            raise FilterError(f"Unsupported filter operator '{op}' for property '{name}'.")
        clauses.append(Clause(name, op, _literal(raw, kind, op)))
        position = match.end()
        if position == len(text):
            return clauses
        joint = _AND.match(text, position)
        if joint is None:
            raise FilterError(f"Invalid filter clause: {text}")
        position = joint.end()


def _literal(raw: str, kind: str, op: str) -> Any:
    quoted = raw.startswith("'")
    found = "str" if quoted else ("bool" if raw in ("true", "false") else "datetime")
    if found != kind:
        raise FilterError(
            "A binary operator with incompatible types was detected. Found operand types "
            f"'{_EDM[kind]}' and '{_EDM[found]}' for operator kind '{_OPERATOR_NAMES[op]}'."
        )
    if kind == "str":
        return raw[1:-1].replace("''", "'")
    if kind == "bool":
        return raw == "true"
    try:
        return parse_time(raw)
    except ValueError as exc:
        raise FilterError(
            f"The DateTimeOffset text '{raw}' should be in format 'yyyy-mm-ddThh:mm:ss('.'s+)?(zz|Z)?'."
        ) from exc


def matches(item: dict[str, Any], clauses: Iterable[Clause]) -> bool:
    """Whether ``item`` satisfies every clause (strings compare case-insensitively, as in the directory)."""
    for clause in clauses:
        value = item.get(clause.field)
        wanted = clause.value
        if isinstance(wanted, datetime):
            if not value:
                return False
            value = parse_time(str(value))
        elif isinstance(wanted, str):
            value = value.casefold() if isinstance(value, str) else value
            wanted = wanted.casefold()
        if clause.op == "eq" and value != wanted:
            return False
        if clause.op == "ne" and value == wanted:
            return False
        if clause.op in ("gt", "ge", "lt", "le"):
            if value is None:
                return False
            ok = {
                "gt": value > wanted,
                "ge": value >= wanted,
                "lt": value < wanted,
                "le": value <= wanted,
            }[clause.op]
            if not ok:
                return False
    return True


def check_options(req: Request, allowed: set[str]) -> None:
    """400 for a system query option this endpoint does not support (Graph refuses, it does not ignore)."""
    for name in req.query:
        if name.startswith("$") and name not in allowed:
            raise FilterError(f"Query option '{name}' is not supported for this resource.")


def filtered(
    req: Request, items: list[dict[str, Any]], fields: dict[str, tuple[str, set[str]]]
) -> list[dict]:
    text = req.query.get("$filter")
    if text is None:
        return items
    clauses = parse_filter(text, fields)
    return [item for item in items if matches(item, clauses)]


def selected(
    item: dict[str, Any], select: str | None, default: Iterable[str] | None = None
) -> dict[str, Any]:
    """The properties asked for with $select (null when absent, like Graph), else ``default`` or all."""
    names = [name.strip() for name in select.split(",") if name.strip()] if select else None
    if names is None and default is None:
        return copy.deepcopy(item)
    return {name: copy.deepcopy(item.get(name)) for name in (names or default or ())}


def _skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(f"fake-m365:{offset}".encode()).decode().rstrip("=")


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        prefix, _, number = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().partition(":")
        if prefix == "fake-m365" and int(number) >= 0:
            return int(number)
    except ValueError:
        pass
    raise FilterError(f"Invalid $skiptoken value '{token}'.")


def page(
    fake: FakeM365, req: Request, items: list[dict[str, Any]], context: str, *, max_top: int | None = None
) -> Reply:
    """One page of a Graph collection with ``@odata.context`` and, when more remain, an absolute
    ``@odata.nextLink`` that repeats the query with a ``$skiptoken``."""
    size = fake.page_size
    if "$top" in req.query:
        try:
            size = int(req.query["$top"])
        except ValueError:
            raise FilterError(f"Invalid value '{req.query['$top']}' for $top query option.") from None
        if size < 1 or (max_top is not None and size > max_top):
            upper = max_top if max_top is not None else "unbounded"
            raise FilterError(
                f"Invalid page size specified: '{size}'. Must be between 1 and {upper} inclusive."
            )
        # $top is a most: like Graph, the fake may page smaller (its page_size), and clients follow nextLink.
        size = min(size, fake.page_size)
    start = _offset(req.query.get("$skiptoken"))
    body: dict[str, Any] = {"@odata.context": context}
    if start + size < len(items):
        query = {**req.query, "$skiptoken": _skiptoken(start + size)}
        body["@odata.nextLink"] = f"{fake.base_url}{req.path}?{urlencode(query, quote_via=quote, safe='$,')}"
    body["value"] = copy.deepcopy(items[start : start + size])  # callers may mutate the state afterwards
    return Reply(200, body)


# --------------------------------------------------------------------------------------------- Graph


def _context(fake: FakeM365, req: Request, fragment: str) -> str:
    return f"{fake.graph_url}/{req.version}/$metadata#{fragment}"


def _find_user(fake: FakeM365, key: str) -> dict[str, Any] | None:
    wanted = key.casefold()
    for user in fake.users:
        if (
            str(user.get("id", "")).casefold() == wanted
            or str(user.get("userPrincipalName", "")).casefold() == wanted
        ):
            return user
    return None


def _user_or_404(fake: FakeM365, req: Request, key: str) -> dict[str, Any]:
    user = _find_user(fake, key)
    if user is None:
        raise graph_error(
            req,
            404,
            "Request_ResourceNotFound",
            f"Resource '{key}' does not exist or one of its queried reference-property objects are not "
            "present.",
        )
    return user


def _mailbox(fake: FakeM365, req: Request, store: dict[str, list[dict]], key: str) -> list[dict[str, Any]]:
    """The list in ``store`` (inbox_rules or mailbox_messages) of the mailbox named by id or UPN."""
    user = _find_user(fake, key)
    keys = (
        [key.lower()]
        if user is None
        else [str(user.get("id", "")), str(user.get("userPrincipalName", "")).lower()]
    )
    for candidate in keys:
        if candidate in store:
            return store[candidate]
    if user is None:
        raise graph_error(req, 404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
    if not user.get("mail") or str(user.get("userPrincipalName", "")).lower() in fake.mailboxless:
        raise graph_error(
            req,
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        )
    return store.setdefault(keys[0], [])


def _body(req: Request) -> dict[str, Any]:
    if not isinstance(req.json, dict):
        raise graph_error(req, 400, "BadRequest", "Empty Payload. JSON content expected.")
    return req.json


USER_FILTERS = {
    "userType": ("str", {"eq", "ne"}),
    "accountEnabled": ("bool", {"eq", "ne"}),
    "userPrincipalName": ("str", {"eq"}),
    "mail": ("str", {"eq"}),
    "id": ("str", {"eq"}),
    "department": ("str", {"eq"}),
    "displayName": ("str", {"eq"}),
}
TRACE_FILTERS = {
    "receivedDateTime": ("datetime", {"ge", "le", "gt", "lt"}),
    **{name: ("str", {"eq"}) for name in ("id", "messageId", "senderAddress", "recipientAddress", "status")},
    **{name: ("str", {"eq"}) for name in ("subject", "fromIP", "toIP")},
}
SIGN_IN_FILTERS = {
    "createdDateTime": ("datetime", {"ge", "le", "gt", "lt"}),
    **{
        name: ("str", {"eq"})
        for name in ("id", "userPrincipalName", "userId", "ipAddress", "appId", "clientAppUsed")
    },
}
MESSAGE_FILTERS = {
    "internetMessageId": ("str", {"eq"}),
    "subject": ("str", {"eq"}),
    "parentFolderId": ("str", {"eq"}),
    "id": ("str", {"eq"}),
    "receivedDateTime": ("datetime", {"ge", "le", "gt", "lt"}),
}
LIST_OPTIONS = {"$filter", "$select", "$top", "$skiptoken", "$count"}


def list_domains(fake: FakeM365, req: Request) -> Reply:
    """GET /domains."""
    require_roles(req, DOMAIN_READ)
    check_options(req, {"$select", "$top", "$skiptoken"})
    items = [selected(domain, req.query.get("$select")) for domain in fake.domains]
    return page(fake, req, items, _context(fake, req, "domains"))


def list_users(fake: FakeM365, req: Request) -> Reply:
    """GET /users: ``$filter`` on a few properties (e.g. ``userType eq 'Member'``), ``$select``; v1.0 returns
    Graph's default properties unless ``$select`` asks for more, beta returns them all."""
    require_roles(req, USER_READ)
    check_options(req, LIST_OPTIONS)
    try:
        users = filtered(req, list(fake.users), USER_FILTERS)
    except FilterError as exc:
        raise graph_error(req, 400, "Request_UnsupportedQuery", str(exc)) from None
    select = req.query.get("$select")
    default = None if req.version == "beta" else USER_DEFAULT_PROPERTIES
    items = [selected(user, select, default) for user in users]
    fragment = f"users({select})" if select else "users"
    try:
        return page(fake, req, items, _context(fake, req, fragment), max_top=999)
    except FilterError as exc:
        raise graph_error(req, 400, "Request_UnsupportedQuery", str(exc)) from None


def get_user(fake: FakeM365, req: Request, user_id: str) -> Reply:
    """GET /users/{id | userPrincipalName}."""
    require_roles(req, USER_READ)
    check_options(req, {"$select"})
    user = _user_or_404(fake, req, user_id)
    default = None if req.version == "beta" else USER_DEFAULT_PROPERTIES
    body = {"@odata.context": _context(fake, req, "users/$entity")}
    body.update(selected(user, req.query.get("$select"), default))
    return Reply(200, body)


SENSITIVE = ("accountEnabled", "passwordProfile")
ADMIN_TARGET_ROLES = {"Privileged Authentication Administrator", "Global Administrator"}
USER_TARGET_ROLES = {"User Administrator"}
USER_TARGET_ROLES |= ADMIN_TARGET_ROLES


def _sensitive_change(fake: FakeM365, req: Request, user: dict[str, Any], changes: dict[str, Any]) -> None:
    """Graph's rules for sensitive attributes of a user: app-only callers need, besides the permission, a
    directory role that may manage the target (403); a user synchronised from on-premises is refused."""
    if not any(name in changes for name in SENSITIVE):
        return
    needed = ADMIN_TARGET_ROLES if user.get("adminRoles") else USER_TARGET_ROLES
    if not needed & fake.app_directory_roles:
        raise graph_error(
            req, 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        )
    if user.get("onPremisesSyncEnabled"):
        raise graph_error(
            req,
            400,
            "Request_BadRequest",
            "Unable to update the specified properties for on-premises mastered Directory Sync objects or "
            "objects currently undergoing migration.",
        )
    profile = changes.get("passwordProfile")
    if isinstance(profile, dict) and "password" in profile:
        password = str(profile["password"] or "")
        classes = sum(
            (
                any(c.islower() for c in password),
                any(c.isupper() for c in password),
                any(c.isdigit() for c in password),
                any(not c.isalnum() for c in password),
            )
        )
        if not 8 <= len(password) <= 256 or classes < 3:
            raise graph_error(
                req,
                400,
                "Request_BadRequest",
                "The specified password does not comply with password "
                "complexity requirements. Please provide a different password.",
            )


def update_user(fake: FakeM365, req: Request, user_id: str) -> Reply:
    """PATCH /users/{id}: 204; ``accountEnabled`` and ``passwordProfile`` need their own roles, and are
    sensitive attributes (:func:`_sensitive_change`)."""
    changes = _body(req)
    needed: list[set[str]] = []
    for name in changes:
        needed.append(
            USER_ENABLE
            if name == "accountEnabled"
            else USER_PASSWORD
            if name == "passwordProfile"
            else USER_WRITE
        )
    for accepted in needed:
        require_roles(req, accepted)
    user = _user_or_404(fake, req, user_id)
    _sensitive_change(fake, req, user, changes)
    for name, value in changes.items():
        if name == "passwordProfile" and isinstance(value, dict):
            user["passwordProfile"] = {**(user.get("passwordProfile") or {}), **value}
        else:
            user[name] = value
    return Reply(204)


def revoke_sessions(fake: FakeM365, req: Request, user_id: str) -> Reply:
    """POST /users/{id}/revokeSignInSessions: sets the user's ``signInSessionsValidFromDateTime``."""
    require_roles(req, USER_REVOKE)
    user = _user_or_404(fake, req, user_id)
    user["signInSessionsValidFromDateTime"] = graph_time(now_utc())
    return Reply(200, {"@odata.context": _context(fake, req, "Edm.Boolean"), "value": True})


def _rules_context(fake: FakeM365, req: Request, user_id: str) -> str:
    return _context(fake, req, f"users('{user_id}')/mailFolders('inbox')/messageRules")


def _find(items: list[dict[str, Any]], item_id: str, req: Request) -> dict[str, Any]:
    for item in items:
        if item.get("id") == item_id:
            return item
    raise graph_error(req, 404, "ErrorItemNotFound", "The specified object was not found in the store.")


def list_rules(fake: FakeM365, req: Request, user_id: str) -> Reply:
    """GET /users/{id}/mailFolders/inbox/messageRules."""
    require_roles(req, RULES_READ, mail=True)
    check_options(req, {"$top", "$skiptoken", "$select"})
    rules = _mailbox(fake, req, fake.inbox_rules, user_id)
    items = [selected(rule, req.query.get("$select")) for rule in rules]
    return page(fake, req, items, _rules_context(fake, req, user_id))


def get_rule(fake: FakeM365, req: Request, user_id: str, rule_id: str) -> Reply:
    """GET /users/{id}/mailFolders/inbox/messageRules/{rule id}."""
    require_roles(req, RULES_READ, mail=True)
    rule = _find(_mailbox(fake, req, fake.inbox_rules, user_id), rule_id, req)
    return Reply(
        200, {"@odata.context": _rules_context(fake, req, user_id) + "/$entity", **copy.deepcopy(rule)}
    )


def create_rule(fake: FakeM365, req: Request, user_id: str) -> Reply:
    """POST /users/{id}/mailFolders/inbox/messageRules: 201 with the rule under a new id."""
    require_roles(req, RULES_WRITE, mail=True)
    body = _body(req)
    rules = _mailbox(fake, req, fake.inbox_rules, user_id)
    if not body.get("displayName"):
        raise graph_error(req, 400, "ErrorInvalidRequest", "The displayName property is required.")
    sequence = body.get("sequence") or max((int(r.get("sequence") or 0) for r in rules), default=0) + 1
    rule = {
        "isEnabled": True,
        "hasError": False,
        "isReadOnly": False,
        "conditions": {},
        "actions": {},
        **copy.deepcopy(body),
        "id": "AQAAA" + base64.urlsafe_b64encode(secrets.token_bytes(6)).decode(),
        "sequence": sequence,
    }
    rules.append(rule)
    return Reply(
        201, {"@odata.context": _rules_context(fake, req, user_id) + "/$entity", **copy.deepcopy(rule)}
    )


def update_rule(fake: FakeM365, req: Request, user_id: str, rule_id: str) -> Reply:
    """PATCH /users/{id}/mailFolders/inbox/messageRules/{rule id}: 200 with the rule."""
    require_roles(req, RULES_WRITE, mail=True)
    changes = _body(req)
    rule = _find(_mailbox(fake, req, fake.inbox_rules, user_id), rule_id, req)
    rule.update({name: copy.deepcopy(value) for name, value in changes.items() if name != "id"})
    return Reply(
        200, {"@odata.context": _rules_context(fake, req, user_id) + "/$entity", **copy.deepcopy(rule)}
    )


def delete_rule(fake: FakeM365, req: Request, user_id: str, rule_id: str) -> Reply:
    """DELETE /users/{id}/mailFolders/inbox/messageRules/{rule id}: 204, or 404 ErrorItemNotFound."""
    require_roles(req, RULES_WRITE, mail=True)
    rules = _mailbox(fake, req, fake.inbox_rules, user_id)
    rules.remove(_find(rules, rule_id, req))
    return Reply(204)


def list_messages(fake: FakeM365, req: Request, user_id: str) -> Reply:
    """GET /users/{id}/messages, e.g. ``$filter=internetMessageId eq '<…>'``."""
    require_roles(req, MAIL_READ, mail=True)
    check_options(req, LIST_OPTIONS)
    messages = _mailbox(fake, req, fake.mailbox_messages, user_id)
    items = [
        selected(message, req.query.get("$select"))
        for message in filtered(req, list(messages), MESSAGE_FILTERS)
    ]
    return page(fake, req, items, _context(fake, req, f"users('{user_id}')/messages"), max_top=1000)


def get_message(fake: FakeM365, req: Request, user_id: str, message_id: str) -> Reply:
    """GET /users/{id}/messages/{message id}."""
    require_roles(req, MAIL_READ, mail=True)
    message = _find(_mailbox(fake, req, fake.mailbox_messages, user_id), message_id, req)
    body = {"@odata.context": _context(fake, req, f"users('{user_id}')/messages/$entity")}
    body.update(selected(message, req.query.get("$select")))
    return Reply(200, body)


def _move(messages: list[dict[str, Any]], message: dict[str, Any], destination: str) -> dict[str, Any]:
    """Exchange moves an item by copying it into the folder under a new id."""
    moved = {**copy.deepcopy(message), "id": exchange_id(), "parentFolderId": destination}
    messages[messages.index(message)] = moved
    return moved


def move_message(fake: FakeM365, req: Request, user_id: str, message_id: str) -> Reply:
    """POST /users/{id}/messages/{message id}/move ``{"destinationId"}``: 201 with the moved copy."""
    require_roles(req, MAIL_WRITE, mail=True)
    destination = _body(req).get("destinationId")
    messages = _mailbox(fake, req, fake.mailbox_messages, user_id)
    message = _find(messages, message_id, req)
    if not isinstance(destination, str) or not destination:
        raise graph_error(req, 400, "ErrorInvalidRequest", "The destinationId parameter is required.")
    moved = _move(messages, message, destination)
    body = {
        "@odata.context": _context(fake, req, f"users('{user_id}')/messages/$entity"),
        **copy.deepcopy(moved),
    }
    return Reply(201, body)


def delete_message(fake: FakeM365, req: Request, user_id: str, message_id: str) -> Reply:
    """DELETE /users/{id}/messages/{message id}: 204; the message moves to deleteditems."""
    require_roles(req, MAIL_WRITE, mail=True)
    messages = _mailbox(fake, req, fake.mailbox_messages, user_id)
    _move(messages, _find(messages, message_id, req), "deleteditems")
    return Reply(204)


def _by_time(items: Iterable[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    def key(item: dict[str, Any]) -> tuple[datetime, str]:
        value = item.get(name)
        return (
            parse_time(str(value)) if value else datetime.min.replace(tzinfo=UTC),
            str(item.get("id", "")),
        )

    return sorted(items, key=key)


TRACE_SPAN = timedelta(days=10)
TRACE_KEPT = timedelta(days=90)
_WHOLE_SECOND_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def _trace_window(req: Request) -> None:
    """messageTraces needs a receivedDateTime window: both bounds, ``YYYY-MM-DDThh:mm:ssZ``, at most 10 days
    apart, starting at most 90 days ago."""
    text = req.query.get("$filter") or ""
    clauses = [c for c in parse_filter(text, TRACE_FILTERS) if c.field == "receivedDateTime"] if text else []
    starts = [c.value for c in clauses if c.op in ("ge", "gt")]
    ends = [c.value for c in clauses if c.op in ("le", "lt")]
    if len(starts) != 1 or len(ends) != 1:
        raise FilterError("The receivedDateTime filter must specify both a start and an end date.")
    for raw in re.findall(r"receivedDateTime\s+\w\w\s+(\S+)", text):
        if not _WHOLE_SECOND_Z.fullmatch(raw):
            raise FilterError(f"Invalid date '{raw}': expected the format YYYY-MM-DDThh:mm:ssZ.")
    start, end = starts[0], ends[0]
    if end - start > TRACE_SPAN:
        raise FilterError("The date range between start and end date must not exceed 10 days.")
    if start < now_utc() - TRACE_KEPT:
        raise FilterError("The start date must be within the last 90 days.")


def list_message_traces(fake: FakeM365, req: Request) -> Reply:
    """GET /admin/exchange/tracing/messageTraces, by receivedDateTime then id; the window rules of
    :func:`_trace_window`; 403 until the message-trace app's service principal is provisioned."""
    require_roles(req, TRACE_READ)
    if not fake.trace_service_principal:
        raise graph_error(
            req,
            403,
            "Forbidden",
            "The service principal of the message trace application "
            "(8bd644d1-64a1-4d4b-ae52-2e0cbf64e373) is not provisioned in the tenant.",
        )
    check_options(req, {"$filter", "$top", "$skiptoken"})
    _trace_window(req)
    traces = _by_time(filtered(req, list(fake.message_traces), TRACE_FILTERS), "receivedDateTime")
    return page(fake, req, traces, _context(fake, req, "admin/exchange/tracing/messageTraces"), max_top=5000)


_EVENT_TYPES = re.compile(r"\s*and\s+signInEventTypes/any\(t:\s*t eq '(?P<type>\w+)'\)")


def list_sign_ins(fake: FakeM365, req: Request) -> Reply:
    """GET /auditLogs/signIns, newest first; the documented options only ($filter, $top, $skiptoken); 403
    when the tenant has no Entra ID P1/P2."""
    require_roles(req, SIGN_IN_READ)
    if not fake.entra_premium:
        raise graph_error(
            req,
            403,
            "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
            "Neither tenant is B2C or tenant doesn't have premium license",
        )
    check_options(req, {"$filter", "$top", "$skiptoken"})
    # v1.0 lists interactive sign-ins only; beta lists them too, or those of the event types a
    # ``signInEventTypes/any(t: t eq '…')`` clause names.
    wanted = {"interactiveUser"}
    text = req.query.get("$filter") or ""
    if lambda_clause := _EVENT_TYPES.search(text):
        if req.version != "beta":
            raise FilterError(
                "Could not find a property named 'signInEventTypes' on type 'microsoft.graph.signIn'."
            )
        wanted = {lambda_clause["type"]}
        text = (text[: lambda_clause.start()] + text[lambda_clause.end() :]).strip()
    candidates = [s for s in fake.sign_ins if wanted & set(s.get("signInEventTypes") or ["interactiveUser"])]
    clauses = parse_filter(text, SIGN_IN_FILTERS) if text else []
    sign_ins = _by_time([s for s in candidates if matches(s, clauses)], "createdDateTime")
    sign_ins.reverse()
    if req.version != "beta":
        sign_ins = [{k: v for k, v in s.items() if k != "signInEventTypes"} for s in sign_ins]
    items = [selected(sign_in, req.query.get("$select")) for sign_in in sign_ins]
    return page(fake, req, items, _context(fake, req, "auditLogs/signIns"), max_top=1000)


_USER = r"(?P<user_id>[^/]+)"
GRAPH_ROUTES: list[tuple[str, re.Pattern[str], Callable[..., Reply]]] = [
    (method, re.compile(pattern), handler)
    for method, pattern, handler in (
        ("GET", r"/domains", list_domains),
        ("GET", r"/users", list_users),
        ("GET", rf"/users/{_USER}", get_user),
        ("PATCH", rf"/users/{_USER}", update_user),
        ("POST", rf"/users/{_USER}/revokeSignInSessions", revoke_sessions),
        ("GET", rf"/users/{_USER}/mailFolders/(?i:inbox)/messageRules", list_rules),
        ("POST", rf"/users/{_USER}/mailFolders/(?i:inbox)/messageRules", create_rule),
        ("GET", rf"/users/{_USER}/mailFolders/(?i:inbox)/messageRules/(?P<rule_id>[^/]+)", get_rule),
        ("PATCH", rf"/users/{_USER}/mailFolders/(?i:inbox)/messageRules/(?P<rule_id>[^/]+)", update_rule),
        ("DELETE", rf"/users/{_USER}/mailFolders/(?i:inbox)/messageRules/(?P<rule_id>[^/]+)", delete_rule),
        ("GET", rf"/users/{_USER}/messages", list_messages),
        ("GET", rf"/users/{_USER}/messages/(?P<message_id>[^/]+)", get_message),
        ("DELETE", rf"/users/{_USER}/messages/(?P<message_id>[^/]+)", delete_message),
        ("POST", rf"/users/{_USER}/messages/(?P<message_id>[^/]+)/move", move_message),
        ("GET", r"/admin/exchange/tracing/messageTraces", list_message_traces),
        ("GET", r"/auditLogs/signIns", list_sign_ins),
    )
]


def handle_graph(fake: FakeM365, req: Request, rest: str) -> Reply:
    """Route a Graph request (``rest`` is the path after ``/graph/{version}``), after authenticating it."""
    allowed: list[str] = []
    for method, pattern, handler in GRAPH_ROUTES:
        match = pattern.fullmatch(rest)
        if match is None:
            continue
        if method != req.method:
            allowed.append(method)
            continue
        req.claims = fake.authenticate(req, GRAPH)
        arguments = {name: unquote(value) for name, value in match.groupdict().items()}
        try:
            return handler(fake, req, **arguments)
        except FilterError as exc:
            raise graph_error(req, 400, "BadRequest", str(exc)) from None
    if allowed:
        raise graph_error(
            req, 405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target."
        )
    raise graph_error(req, 404, "Request_ResourceNotFound", f"Resource not found for the segment '{rest}'.")
