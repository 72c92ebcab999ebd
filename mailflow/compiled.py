"""The compiled fast path of ingest validation (issue 17): ``message`` and ``sign_in`` events, the bulk of any
stream, checked by msgspec's C validator instead of the field-by-field Python walk of ``validation.py``.

msgspec checks the shape in one call: the type tag, required fields, JSON types (strictly: no bool for an
integer, no number for a string), lengths, enumerations, integer ranges, and that there is no unknown field.
What a type cannot say is then checked with the *same* checkers the Python validator uses (addresses and
sub-addresses, times and their accepted range, IP addresses, NUL and lone surrogates, blank strings), so the
normal form, and therefore the content hash, is the one the Python validator gives.

The fast path only ever *accepts*: anything it does not accept outright (an unknown field, which deserves a
warning; a wrong type; a bad address; another event type) returns ``None`` and the caller runs the Python
validator on that event, which produces the contract's error messages and field paths. A differential test
(``tests/mailflow/test_compiled_validation.py``) checks that both give the same result.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from mailboxes.models import SignIn

from .models import MessageEvent

MAX_ID_LENGTH = 200
MAX_RECIPIENTS = 10_000
MAX_URLS = 1_000
MAX_URL_LENGTH = 2_048
MAX_SIZE = 2**63 - 1

_Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
_Time = Annotated[str, Meta(max_length=64)]
_Address = Annotated[str, Meta(min_length=3, max_length=254)]


_Text1000 = Annotated[str, Meta(max_length=1000)]
_MessageId = Annotated[str, Meta(max_length=998)]
_BodyHash = Annotated[str, Meta(max_length=128)]


class _Event(Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    id: _Id
    time: _Time


class MessageIn(_Event, tag="message"):
    sender: _Address
    recipients: Annotated[list[_Address], Meta(min_length=1, max_length=MAX_RECIPIENTS)]
    subject: _Text1000 | None = None
    verdict: Literal[tuple(MessageEvent.Verdict.values)] | None = None  # type: ignore[valid-type]  # from the choices
    urls: (
        Annotated[
            list[Annotated[str, Meta(min_length=1, max_length=MAX_URL_LENGTH)]], Meta(max_length=MAX_URLS)
        ]
        | None
    ) = None
    size: Annotated[int, Meta(ge=0, le=MAX_SIZE)] | None = None
    client_ip: Annotated[str, Meta(max_length=64)] | None = None
    internet_message_id: _MessageId | None = None
    body_hash: _BodyHash | None = None


class SignInIn(_Event, tag="sign_in"):
    user: _Address
    ip: Annotated[str, Meta(max_length=64)]
    country: Annotated[str, Meta(min_length=2, max_length=2, pattern="^[A-Za-z]{2}$")] | None = None
    client_app: Literal[tuple(SignIn.ClientApp.values)] | None = None  # type: ignore[valid-type]  # from the choices
    result: Literal[tuple(SignIn.Result.values)] | None = None  # type: ignore[valid-type]  # from the choices
    user_agent: _Text1000 | None = None


FastEvent = MessageIn | SignInIn
_LINE_DECODER = msgspec.json.Decoder(FastEvent)
_OPTIONAL_MESSAGE_TEXT = ("subject", "internet_message_id", "body_hash")


class NotFast(Exception):
    """The event is left to the Python validator (which reports it, or accepts it with a warning)."""


def decode_line(line: bytes | str) -> FastEvent | None:
    """One NDJSON line decoded and shape-checked in C; ``None`` when it is not a well-formed fast event."""
    try:
        return _LINE_DECODER.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        return None


def from_object(raw: Any) -> FastEvent | None:
    """A decoded JSON object shape-checked in C; ``None`` when it is not a well-formed fast event."""
    if not isinstance(raw, dict) or raw.get("type") not in ("message", "sign_in"):
        return None
    try:
        return msgspec.convert(raw, FastEvent, strict=True)
    except (msgspec.ValidationError, ValueError):  # ValueError: a lone surrogate msgspec cannot encode
        return None


def normal_form(event: FastEvent, checks: Any) -> tuple[datetime, dict[str, Any], str, str]:
    """(UTC time, normal form, owner address, content hash) of a shape-checked event, with ``checks`` (the
    validation module's checkers). Raises :class:`NotFast` when a checker refuses a value, so the caller can
    report it the contract's way.

    The content hash is the SHA-256 of msgspec's sorted compact encoding, byte for byte the canonical JSON
    of ``ValidEvent.content_hash`` for these values (strings, integers, lists: no floats).
    """
    try:
        moment, data, owner = _normal_form(event, checks)
    except checks.Invalid:
        raise NotFast from None
    return moment, data, owner, hashlib.sha256(_encode_sorted(data)).hexdigest()


_encode_sorted = msgspec.json.Encoder(order="sorted").encode


def _text_value(value: str, checks: Any) -> str:
    checks._storable(value)
    return value


# Recipient -> its normal form (lowercased, checked): a tenant's traffic repeats a few thousand addresses.
_RECIPIENTS: dict[str, str] = {}
_RECIPIENTS_KEPT = 65_536


def _recipients(recipients: list[str], checks: Any) -> list[str]:
    """The recipients' normal forms, first occurrence kept (the validator's ``_address`` on a cache miss)."""
    known = _RECIPIENTS
    result = []
    for recipient in recipients:
        address = known.get(recipient)
        if address is None:
            address = checks._address(recipient, None)
            if len(known) >= _RECIPIENTS_KEPT:
                known.clear()
            known[recipient] = address
        result.append(address)
    return list(dict.fromkeys(result)) if len(result) > 1 else result


def _normal_form(event: FastEvent, checks: Any) -> tuple[datetime, dict[str, Any], str]:
    if not event.id.strip():
        raise NotFast
    data: dict[str, Any] = {"type": "", "id": _text_value(event.id, checks)}
    moment = checks._time(event.time, None)
    data["time"] = moment.isoformat()
    if isinstance(event, MessageIn):
        data["type"] = "message"
        owner = checks._mailbox_address(event.sender, None)
        data["sender"] = owner
        data["recipients"] = _recipients(event.recipients, checks)
        for name in _OPTIONAL_MESSAGE_TEXT:
            value = getattr(event, name)
            if value is not None:
                data[name] = _text_value(value, checks)
        if event.verdict is not None:
            data["verdict"] = event.verdict
        if event.urls is not None:
            for url in event.urls:
                if not url.strip():
                    raise NotFast
                checks._storable(url)
            data["urls"] = event.urls
        if event.size is not None:
            data["size"] = event.size
        if event.client_ip is not None:
            data["client_ip"] = checks._ip(event.client_ip, None)
    else:
        data["type"] = "sign_in"
        owner = checks._mailbox_address(event.user, None)
        data["user"] = owner
        data["ip"] = checks._ip(event.ip, None)
        if event.country is not None:
            data["country"] = event.country.upper()
        if event.client_app is not None:
            data["client_app"] = event.client_app
        if event.result is not None:
            data["result"] = event.result
        if event.user_agent is not None:
            data["user_agent"] = _text_value(event.user_agent, checks)
    return moment, data, owner
