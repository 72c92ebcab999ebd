"""Validation of ingest contract v1 (DESIGN section 4): every field of every event type, and its normal form.

An event passes when its type is known and every field has the documented shape; unknown fields are ignored
and reported as warnings. The normal form (``ValidEvent.data``) keeps the known fields only, with addresses
lowercased, times in UTC, optional fields that were null or absent left out and defaults filled in; its
SHA-256 is the event's content hash, so re-sending the same event in another spelling (``Bob@X.com``,
``+02:00``) is a duplicate, not a conflict.

The addresses that own an event (a ``mailbox`` event's address, a message's sender, the mailbox of a rule /
forwarding / delegation, a sign-in's user) must be in an accepted domain of the tenant — its stored domains
plus those declared by ``mailbox`` events of the same batch — or already be a known mailbox.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import re
from collections.abc import Callable, Collection, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from core.models import Tenant
from mailboxes.addresses import base_address, domain_of, is_valid_address
from mailboxes.models import AcceptedDomain, Delegation, Mailbox, SignIn

from . import compiled
from .models import EventType, MessageEvent

MAX_ID_LENGTH = 200
MAX_RECIPIENTS = 10_000
MAX_URLS = 1_000
MAX_URL_LENGTH = 2_048
MAX_LIST_ITEMS = 100
MAX_OBJECT_CHARS = 16_384
MAX_SIZE = 2**63 - 1
# Open-ended values (platform rule conditions): nesting depth and integer magnitude kept storable.
MAX_DEPTH = 10
MAX_INTEGER = 2**63 - 1
# NUL (PostgreSQL text cannot hold it) and lone UTF-16 surrogates (not encodable as UTF-8).
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")

RULE_OPERATIONS = ("created", "updated", "deleted")
DELEGATION_OPERATIONS = ("added", "removed")
RULE_ACTIONS = ("forward_to", "redirect_to", "move_to_folder", "delete", "mark_as_read")
RULE_TEXT_CONDITIONS = ("subject_contains", "body_contains", "from")


class Invalid(Exception):
    """A field's value is not acceptable; ``path`` names a part of it (``[2]``, ``.forward_to``)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


Warn = Callable[[str, str], None]  # (field path suffix, warning)
Checker = Callable[[Any, Warn], Any]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _show(value: Any) -> str:
    """A short JSON rendering of a value for an error message; safe to encode as UTF-8."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):
        text = f"<{_json_type(value)}>"
    text = text if len(text) <= 60 else text[:57] + "…"
    return safe_text(text)


def safe_text(text: str) -> str:
    """``text`` with NUL and lone surrogates shown as escapes (``\\u0000``), for messages and field names."""
    return _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _storable(value: str) -> str:
    """Refuses a string the database cannot store or UTF-8 cannot encode."""
    found = _UNSTORABLE.search(value)
    if found is not None:
        what = "a NUL character" if found.group() == "\x00" else "a lone UTF-16 surrogate"
        raise Invalid(f"must not contain {what} (\\u{ord(found.group()):04x}) at position {found.start()}")
    return value


def _text(max_length: int, *, nonblank: bool = False) -> Checker:
    def check(value: Any, warn: Warn) -> str:
        if not isinstance(value, str):
            raise Invalid(f"must be a string, got {_json_type(value)}")
        if nonblank and not value.strip():
            raise Invalid("must be a non-empty string")
        if len(value) > max_length:
            raise Invalid(f"must be at most {max_length} characters long, got {len(value)}")
        return _storable(value)

    return check


def _enum(values: Sequence[str]) -> Checker:
    allowed = ", ".join(values)

    def check(value: Any, warn: Warn) -> str:
        if not isinstance(value, str) or value not in values:
            raise Invalid(f"must be one of {allowed}; got {_show(value)}")
        return value

    return check


def _bool(value: Any, warn: Warn) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"must be true or false, got {_json_type(value)} {_show(value)}")
    return value


@lru_cache(maxsize=65_536)
def _valid_lowercase_address(value: str) -> str | None:
    """The lowercased address, or None when it is not valid. Cached: a tenant's traffic repeats addresses."""
    address = value.lower()
    return address if is_valid_address(address) else None


def _address(value: Any, warn: Warn) -> str:
    if not isinstance(value, str):
        raise Invalid(f"must be an email address (a string), got {_json_type(value)}")
    address = _valid_lowercase_address(value)
    if address is None:
        raise Invalid(f"is not a valid email address: {_show(value)}")
    return address


def _mailbox_address(value: Any, warn: Warn) -> str:
    """The address of a mailbox of the tenant: a sub-address (``user+tag@``) is the mailbox ``user@``."""
    return _base_address(_address(value, warn), _context()[2])


_base_address = lru_cache(maxsize=65_536)(base_address)


def _address_or_null(value: Any, warn: Warn) -> str | None:
    return None if value is None else _address(value, warn)


def _list_of(item: Checker, *, max_items: int, nonempty: bool = False, unique: bool = False) -> Checker:
    def check(value: Any, warn: Warn) -> list:
        if not isinstance(value, list):
            raise Invalid(f"must be an array, got {_json_type(value)}")
        if nonempty and not value:
            raise Invalid("must not be empty")
        if len(value) > max_items:
            raise Invalid(f"must have at most {max_items} items, got {len(value)}")
        result = []
        for position, element in enumerate(value):
            try:
                result.append(item(element, warn))
            except Invalid as exc:
                raise Invalid(exc.message, f"[{position}]{exc.path}") from None
        return list(dict.fromkeys(result)) if unique else result

    return check


def _one_or_many(item: Checker) -> Checker:
    """A single value or an array of them; stored as an array."""
    many = _list_of(item, max_items=MAX_LIST_ITEMS, nonempty=True, unique=True)

    def check(value: Any, warn: Warn) -> list:
        return many(value, warn) if isinstance(value, list) else [item(value, warn)]

    return check


def _size(value: Any, warn: Warn) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(f"must be a whole number of bytes, got {_json_type(value)} {_show(value)}")
    if not 0 <= value <= MAX_SIZE:
        raise Invalid(f"must be between 0 and {MAX_SIZE}, got {value}")
    return value


# A dotted quad already in canonical form (no leading zeros) is its own compressed form: no need for
# ``ipaddress``, which costs more than the rest of an event's validation.
_CANONICAL_IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
)


def _ip(value: Any, warn: Warn) -> str:
    if not isinstance(value, str):
        raise Invalid(f"must be an IPv4 or IPv6 address (a string), got {_json_type(value)}")
    if _CANONICAL_IPV4.fullmatch(value):
        return value
    try:
        if "%" in value:
            raise ValueError(value)
        return ipaddress.ip_address(value).compressed
    except ValueError:
        raise Invalid(f"is not a valid IPv4 or IPv6 address: {_show(value)}") from None


def _country(value: Any, warn: Warn) -> str:
    if not isinstance(value, str) or len(value) != 2 or not (value.isascii() and value.isalpha()):
        raise Invalid(f"must be an ISO 3166 alpha-2 country code (two letters), got {_show(value)}")
    return value.upper()


@cache
def _earliest(setting: str) -> datetime:
    try:
        earliest = datetime.fromisoformat(setting)
    except ValueError:
        earliest = None
    if earliest is None or earliest.utcoffset() is None:
        raise ImproperlyConfigured(
            f"INGEST_EARLIEST_TIME must be an ISO 8601 date-time with an offset, got {setting!r}"
        )
    return earliest.astimezone(UTC)


def time_window() -> tuple[datetime, datetime]:
    """The event times ingest accepts: ``INGEST_EARLIEST_TIME`` to now + ``INGEST_MAX_FUTURE_SECONDS``."""
    latest = timezone.now() + timedelta(seconds=max(0, min(settings.INGEST_MAX_FUTURE_SECONDS, 10**9)))
    return _earliest(settings.INGEST_EARLIEST_TIME), latest


# What every event of one validate_events call is checked against: (earliest, latest, recipient delimiter),
# read from the settings and the clock once per batch.
_BATCH: ContextVar[tuple[datetime, datetime, str] | None] = ContextVar("ingest_batch", default=None)


def _batch_context() -> tuple[datetime, datetime, str]:
    return (*time_window(), settings.RECIPIENT_DELIMITER)


def _context() -> tuple[datetime, datetime, str]:
    return _BATCH.get() or _batch_context()


def _time(value: Any, warn: Warn) -> datetime:
    if not isinstance(value, str):
        raise Invalid(f"must be an ISO 8601 date-time string with an offset, got {_json_type(value)}")
    try:
        parsed = datetime.fromisoformat(value) if len(value) <= 64 else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise Invalid(f"is not an ISO 8601 date-time (e.g. 2025-01-31T09:30:00Z): {_show(value)}")
    if parsed.utcoffset() is None:
        raise Invalid(f"must carry a UTC offset (e.g. Z or +02:00): {_show(value)}")
    try:
        moment = parsed.astimezone(UTC)
    except OverflowError:
        moment = None
    earliest, latest, _ = _context()
    if moment is None or not earliest <= moment <= latest:
        raise Invalid(
            f"is out of range: {_show(value)} (accepted: {earliest.isoformat()} to "
            f"{settings.INGEST_MAX_FUTURE_SECONDS} seconds from now, {latest.isoformat(timespec='seconds')})"
        )
    return moment


def _event_id(value: Any, warn: Warn) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"must be a non-empty string, got {_json_type(value)} {_show(value)}")
    if len(value) > MAX_ID_LENGTH:
        raise Invalid(f"must be at most {MAX_ID_LENGTH} characters long, got {len(value)}")
    return _storable(value)


def _open_value(value: Any, depth: int = 0) -> None:
    """An open-ended JSON value (kept as sent) that PostgreSQL and UTF-8 can store: strings (keys too)
    without NUL or lone surrogates, integers within 64 bits, finite numbers, at most ``MAX_DEPTH`` deep."""
    if depth > MAX_DEPTH:
        raise Invalid(f"must be nested at most {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        _storable(value)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not -MAX_INTEGER <= value <= MAX_INTEGER:
            raise Invalid(f"integers must be within ±{MAX_INTEGER}")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise Invalid("numbers must be finite")
    elif isinstance(value, list):
        for position, item in enumerate(value):
            try:
                _open_value(item, depth + 1)
            except Invalid as exc:
                raise Invalid(exc.message, f"[{position}]{exc.path}") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            try:
                _storable(key)
                _open_value(item, depth + 1)
            except Invalid as exc:
                raise Invalid(exc.message, f".{safe_text(key)}{exc.path}") from None
    else:
        raise Invalid(f"must be a JSON value, got {_json_type(value)}")


def _object_size(value: dict) -> None:
    if len(json.dumps(value, ensure_ascii=False)) > MAX_OBJECT_CHARS:
        raise Invalid(f"must be at most {MAX_OBJECT_CHARS} characters as JSON")


_RULE_ACTION_CHECKS: dict[str, Checker] = {
    "forward_to": _one_or_many(_address),
    "redirect_to": _one_or_many(_address),
    "move_to_folder": _text(255, nonblank=True),
    "delete": _bool,
    "mark_as_read": _bool,
}
_CONDITION_TEXT = _one_or_many(_text(1000, nonblank=True))


def _rule_actions(value: Any, warn: Warn) -> dict:
    """The documented actions; addresses stored as lowercased arrays. Unknown actions: ignored, warned."""
    if not isinstance(value, dict):
        raise Invalid(f"must be an object, got {_json_type(value)}")
    result = {}
    for name, item in value.items():
        check = _RULE_ACTION_CHECKS.get(name)
        if check is None:
            warn(f".{safe_text(name)}", f"unknown rule action, ignored (known: {', '.join(RULE_ACTIONS)})")
            continue
        if item is None:
            continue
        try:
            result[name] = check(item, warn)
        except Invalid as exc:
            raise Invalid(exc.message, f".{name}{exc.path}") from None
    return result


def _rule_conditions(value: Any, warn: Warn) -> dict:
    """Open-ended: the text conditions are checked (stored as arrays), other platform conditions are kept."""
    if not isinstance(value, dict):
        raise Invalid(f"must be an object, got {_json_type(value)}")
    _open_value(value)
    _object_size(value)
    result = {}
    for name, item in value.items():
        if item is None:
            continue
        if name in RULE_TEXT_CONDITIONS:
            try:
                item = _CONDITION_TEXT(item, warn)
            except Invalid as exc:
                raise Invalid(exc.message, f".{name}{exc.path}") from None
        result[name] = item
    return result


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    check: Checker
    required: bool = False
    default: Any = None
    null_is_value: bool = False  # null is meaningful (forwarding turned off), not "absent"
    owner: bool = False  # an address that must be a mailbox of the tenant (accepted domain or known)


_COMMON = (Field("id", _event_id, required=True), Field("time", _time, required=True))

SCHEMAS: dict[str, tuple[Field, ...]] = {
    EventType.MAILBOX: (
        Field("address", _mailbox_address, required=True, owner=True),
        Field("display_name", _text(200)),
        Field("department", _text(200)),
        Field("vip", _bool),
    ),
    EventType.MESSAGE: (
        Field("sender", _mailbox_address, required=True, owner=True),
        Field(
            "recipients",
            _list_of(_address, max_items=MAX_RECIPIENTS, nonempty=True, unique=True),
            required=True,
        ),
        Field("subject", _text(1000)),
        Field("verdict", _enum(MessageEvent.Verdict.values)),
        Field("urls", _list_of(_text(MAX_URL_LENGTH, nonblank=True), max_items=MAX_URLS)),
        Field("size", _size),
        Field("client_ip", _ip),
        Field("internet_message_id", _text(998)),
        Field("body_hash", _text(128)),
    ),
    EventType.INBOX_RULE: (
        Field("mailbox", _mailbox_address, required=True, owner=True),
        Field("operation", _enum(RULE_OPERATIONS), required=True),
        Field("rule_id", _text(MAX_ID_LENGTH, nonblank=True), required=True),
        Field("name", _text(255), default=""),
        Field("conditions", _rule_conditions, default={}),
        Field("actions", _rule_actions, default={}),
        Field("enabled", _bool, default=True),
    ),
    EventType.FORWARDING: (
        Field("mailbox", _mailbox_address, required=True, owner=True),
        Field("forward_to", _address_or_null, null_is_value=True),
        Field("keep_copy", _bool, default=False),
    ),
    EventType.DELEGATION: (
        Field("mailbox", _mailbox_address, required=True, owner=True),
        Field("delegate", _address, required=True),
        Field("access", _enum(Delegation.Access.values), required=True),
        Field("operation", _enum(DELEGATION_OPERATIONS), required=True),
    ),
    EventType.SIGN_IN: (
        Field("user", _mailbox_address, required=True, owner=True),
        Field("ip", _ip, required=True),
        Field("country", _country),
        Field("client_app", _enum(SignIn.ClientApp.values)),
        Field("result", _enum(SignIn.Result.values)),
        Field("user_agent", _text(1000)),
    ),
}


class _Checks:
    """The checkers the compiled path reuses, so both paths give the same normal form."""

    Invalid = Invalid
    _storable = staticmethod(_storable)
    _time = staticmethod(_time)
    _ip = staticmethod(_ip)
    _address = staticmethod(_address)
    _mailbox_address = staticmethod(_mailbox_address)


_CHECKS = _Checks()
_KNOWN_FIELDS = {t: {"type", *(f.name for f in (*_COMMON, *fields))} for t, fields in SCHEMAS.items()}
_TYPES = ", ".join(SCHEMAS)


@dataclass(slots=True)
class ValidEvent:
    """An event that passed validation, in normal form. ``data`` is JSON-ready (``time``: UTC ISO string)."""

    index: int
    id: str
    type: str
    time: datetime
    data: dict[str, Any]
    owner: str  # the address of the mailbox the event belongs to
    _hash: str = ""

    @property
    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON of the normal form (sorted keys, no spaces)."""
        if not self._hash:
            canonical = json.dumps(self.data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            self._hash = hashlib.sha256(canonical.encode()).hexdigest()
        return self._hash


@dataclass
class ValidationReport:
    """What validation found. ``events`` are the valid events in input order.

    ``errors`` are ``{"index", "field", "error"}``, ``warnings`` ``{"index", "field", "warning"}`` (``field``
    is None when the whole event is meant). With ``defer_domain_check``, the owner addresses outside the
    accepted domains are left in ``outside_addresses`` (address → [(index, field)]) for the caller to settle.
    """

    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    events: list[ValidEvent] = field(default_factory=list)
    invalid_indexes: set[int] = field(default_factory=set)
    stored_domains: set[str] = field(default_factory=set)
    accepted_domains: set[str] = field(default_factory=set)
    declared_domains: set[str] = field(default_factory=set)
    outside_addresses: dict[str, list[tuple[int, str]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, index: int, field_name: str | None, message: str) -> None:
        self.errors.append({"index": index, "field": field_name, "error": message})
        self.invalid_indexes.add(index)


def _validate_fast(raw: Any, index: int) -> ValidEvent | Any:
    """The compiled path (``compiled.py``) for a decoded object or an already shape-checked event: the
    ``ValidEvent``, or the raw object for :func:`_validate_one` when the fast path does not accept it."""
    event = raw if isinstance(raw, compiled.MessageIn | compiled.SignInIn) else compiled.from_object(raw)
    if event is None:
        return raw
    try:
        moment, data, owner, content_hash = compiled.normal_form(event, _CHECKS)
    except compiled.NotFast:
        return raw if event is not raw else compiled.msgspec.to_builtins(raw)
    return ValidEvent(
        index=index, id=data["id"], type=data["type"], time=moment, data=data, owner=owner, _hash=content_hash
    )


def _validate_one(raw: Any, index: int, report: ValidationReport) -> ValidEvent | None:
    fast = _validate_fast(raw, index)
    if isinstance(fast, ValidEvent):
        return fast
    raw = fast
    if not isinstance(raw, dict):
        report.error(index, None, f"an event must be a JSON object, got {_json_type(raw)}")
        return None

    def warn(path: str, message: str) -> None:
        report.warnings.append({"index": index, "field": path, "warning": message})

    def warn_under(name: str) -> Warn:
        return lambda path, message: warn(f"{name}{path}", message)

    errors_before = len(report.errors)
    event_type = raw.get("type")
    if event_type is None:
        report.error(index, "type", f"is required (one of {_TYPES})")
        schema: tuple[Field, ...] = ()
    elif not isinstance(event_type, str) or event_type not in SCHEMAS:
        report.error(index, "type", f"unknown event type {_show(event_type)}; expected one of {_TYPES}")
        schema = ()
    else:
        schema = SCHEMAS[event_type]
        known = _KNOWN_FIELDS[event_type]
        for name in raw:
            if name not in known:
                warn(safe_text(str(name)), "unknown field, ignored")
    data: dict[str, Any] = {"type": event_type}
    for spec in (*_COMMON, *schema):
        value = raw.get(spec.name)
        if value is None and not (spec.null_is_value and spec.name in raw):
            if spec.required:
                report.error(
                    index, spec.name, "is required" if spec.name not in raw else "is required, got null"
                )
            elif spec.default is not None:
                default = spec.default
                data[spec.name] = default.copy() if isinstance(default, dict) else default
            elif spec.null_is_value:
                data[spec.name] = None
            continue
        try:
            data[spec.name] = spec.check(value, warn_under(spec.name))
        except Invalid as exc:
            report.error(index, f"{spec.name}{exc.path}", exc.message)
    if len(report.errors) > errors_before:
        return None
    time = data["time"]
    data["time"] = time.isoformat()
    owner = next(data[spec.name] for spec in schema if spec.owner)
    return ValidEvent(index=index, id=data["id"], type=data["type"], time=time, data=data, owner=owner)


def owner_field(event_type: str) -> str:
    """The name of the field holding the address an event of this type belongs to."""
    return next(spec.name for spec in SCHEMAS[event_type] if spec.owner)


def validate_events(
    tenant: Tenant,
    events: Sequence[Any],
    *,
    base_index: int = 0,
    accepted_domains: Collection[str] | None = None,
    defer_domain_check: bool = False,
) -> ValidationReport:
    """Check every event of a batch; report errors and warnings by index (``base_index`` + position).

    ``accepted_domains`` replaces the tenant's stored ones (``import_events`` passes them once for a whole
    file); the domains of the batch's valid ``mailbox`` events are always added. Queries: one for the stored
    domains (unless given), one for known mailboxes when some owner address is outside them.
    """
    batch = _BATCH.set(_batch_context())
    try:
        return _validate_events(tenant, events, base_index, accepted_domains, defer_domain_check)
    finally:
        _BATCH.reset(batch)


def _validate_events(
    tenant: Tenant,
    events: Sequence[Any],
    base_index: int,
    accepted_domains: Collection[str] | None,
    defer_domain_check: bool,
) -> ValidationReport:
    report = ValidationReport()
    stored = (
        set(accepted_domains) if accepted_domains is not None else AcceptedDomain.objects.domains_of(tenant)
    )
    valid: list[ValidEvent] = []
    for position, raw in enumerate(events):
        event = _validate_one(raw, base_index + position, report)
        if event is not None:
            valid.append(event)
            if event.type == EventType.MAILBOX:
                report.declared_domains.add(domain_of(event.owner))
    report.stored_domains = stored
    report.accepted_domains = stored | report.declared_domains
    outside: dict[str, list[tuple[int, str]]] = {}
    for event in valid:
        if domain_of(event.owner) not in report.accepted_domains:
            outside.setdefault(event.owner, []).append((event.index, owner_field(event.type)))
    if outside and defer_domain_check:
        report.outside_addresses = outside
    elif outside:
        known = set(
            Mailbox.objects.filter(tenant=tenant, address__in=list(outside)).values_list("address", flat=True)
        )
        for address, places in outside.items():
            if address not in known:
                for index, field_name in places:
                    report.error(index, field_name, outside_domain_message(address))
    report.events = [e for e in valid if e.index not in report.invalid_indexes]
    report.errors.sort(key=lambda e: e["index"])
    return report


def outside_domain_message(address: str) -> str:
    return (
        f"{address} is not a mailbox of the tenant: its domain {domain_of(address)} "
        "is not an accepted domain "
        "(declare it with a mailbox event or add it as an accepted domain)"
    )
