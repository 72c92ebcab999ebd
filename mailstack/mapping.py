"""What the servers post, mapped to contract v1 events (DESIGN section 4).

**Rspamd** (``metadata_exporter``, JSON formatter): one scanned message → a ``message`` event. Its id comes
from Postfix's queue id (``qid``; :mod:`mailflow.postfix_ids`), as the Postfix policy service's does for the
same message, so the two sources make one event (the second is merged into the first). Sender: the
authenticated user (``user``); mail without one (inbound, ``"unknown"``) is not outbound and is skipped.
Verdict (:func:`verdict_of`): a phishing symbol → ``phish``; a virus symbol → ``malware``; else a spam action
(``reject``, ``add header``, ``rewrite subject``) → ``spam``; else ``clean``. The symbol lists and the
spam actions are settings (``MAILSTACK_PHISH_SYMBOLS``, ``MAILSTACK_MALWARE_SYMBOLS``,
``MAILSTACK_SPAM_ACTIONS``); an entry ``group:<name>`` matches every symbol of that Rspamd group.

**Dovecot** (authentication policy, ``command=report``): one authentication → a ``sign_in`` event (user =
the login, ip = ``remote``, client app from ``protocol``, result from ``success``, country from the local
GeoIP database).
"""

from __future__ import annotations

import contextlib
import ipaddress
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.conf import settings

from mailflow.postfix_ids import postfix_event_id

from .geo import country_of

UNKNOWN = "unknown"
CLIENT_APPS = {
    "imap": "imap",
    "pop3": "pop",
    "smtp": "smtp",
    "submission": "smtp",
    "lmtp": "other",
    "sieve": "other",
    "managesieve": "other",
    "doveadm": "other",
}


class Skipped(Exception):
    """The request is well-formed but carries nothing to record (inbound mail, no user)."""


class BadRequest(Exception):
    """The request is not what the server sends; the message says why."""


def _matches(entry: str, name: str, groups: set[str]) -> bool:
    if entry.startswith("group:"):
        return entry[6:].lower() in groups
    return entry.upper() == name.upper()


def verdict_of(action: str, symbols: Iterable[dict[str, Any]]) -> str:
    """``phish`` / ``malware`` from the symbols, else ``spam`` from the action, else ``clean``."""
    names: list[tuple[str, set[str]]] = []
    for symbol in symbols:
        if not isinstance(symbol, dict) or not isinstance(symbol.get("name"), str):
            continue
        groups = {str(g).lower() for g in (symbol.get("groups") or []) if isinstance(g, str)}
        if isinstance(symbol.get("group"), str):
            groups.add(symbol["group"].lower())
        names.append((symbol["name"], groups))
    for verdict, entries in (
        ("phish", settings.MAILSTACK_PHISH_SYMBOLS),
        ("malware", settings.MAILSTACK_MALWARE_SYMBOLS),
    ):
        if any(_matches(entry, name, groups) for entry in entries for name, groups in names):
            return verdict
    spam_actions = {a.strip().lower() for a in settings.MAILSTACK_SPAM_ACTIONS}
    if isinstance(action, str) and action.strip().lower() in spam_actions:
        return "spam"
    return "clean"


def _known(value: Any) -> str:
    return value.strip() if isinstance(value, str) and value.strip() and value != UNKNOWN else ""


@lru_cache(maxsize=4)
def _login_table(value: str) -> dict[str, str]:
    table = {}
    for item in value.split(","):
        login, sep, address = item.partition("=")
        if sep and login.strip() and "@" in address:
            table[login.strip().lower()] = address.strip().lower()
    return table


def mailbox_for_login(login: str) -> str:
    """The mailbox a login (SASL or IMAP) belongs to: the login when it is an address, else its entry in
    ``ENFORCEMENT_SASL_LOGINS`` (``login=address,…``, the table the Postfix policy service uses), else the
    login as it is (the ingest service rejects it)."""
    login = login.strip().lower()
    if "@" in login:
        return login
    return _login_table(settings.ENFORCEMENT_SASL_LOGINS).get(login, login)


def rspamd_event(body: dict[str, Any], *, received: datetime | None = None) -> dict[str, Any]:
    """The ``message`` event of one metadata_exporter post; :class:`Skipped` for mail of no authenticated
    user, :class:`BadRequest` when the fields are not Rspamd's."""
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object (metadata_exporter's json formatter)")
    if "action" not in body or "symbols" not in body:
        raise BadRequest("not a metadata_exporter json post: action and symbols are missing")
    user = _known(body.get("user"))
    if not user:
        raise Skipped("no authenticated user: not outbound mail")
    qid = _known(body.get("qid"))
    message_id = _known(body.get("message_id"))
    at = received or datetime.now(UTC)
    if qid:
        event_id = postfix_event_id(qid, at)
    elif message_id:  # scanned outside Postfix (rspamc): the Message-ID names it
        event_id = f"rspamd:{message_id}"
    else:
        raise BadRequest("neither qid nor message_id: the message cannot be named")
    recipients = body.get("rcpt")
    if not isinstance(recipients, list) or not recipients:
        raise BadRequest("rcpt must be a non-empty list of addresses")
    symbols = body["symbols"] if isinstance(body["symbols"], list) else []
    event: dict[str, Any] = {
        "type": "message",
        "id": event_id,
        "time": at.isoformat(),
        "sender": mailbox_for_login(user),
        "recipients": [str(r).lower() for r in recipients],
        "verdict": verdict_of(body.get("action", ""), symbols),
    }
    subject = _known(body.get("header_subject")) or _known(body.get("subject"))
    if subject:
        event["subject"] = subject[:998]
    if message_id:
        event["internet_message_id"] = f"<{message_id.strip('<>')}>"
    ip = _known(body.get("ip"))
    if ip:
        with contextlib.suppress(ValueError):
            event["client_ip"] = str(ipaddress.ip_address(ip))
    if isinstance(body.get("urls"), list):
        event["urls"] = [u for u in body["urls"] if isinstance(u, str)][:1000]
    if isinstance(body.get("size"), int) and body["size"] >= 0:
        event["size"] = body["size"]
    return event


def dovecot_sign_in(body: dict[str, Any], *, received: datetime | None = None) -> dict[str, Any]:
    """The ``sign_in`` event of one ``command=report`` body; :class:`Skipped` without a login or address."""
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    login = _known(body.get("login"))
    remote = _known(body.get("remote"))
    if not login or not remote:
        raise Skipped("no login or no remote address")
    try:
        ip = str(ipaddress.ip_address(remote))
    except ValueError as exc:
        raise Skipped(f"remote is not an IP address: {remote!r}") from exc
    success = body.get("success") is True and body.get("policy_reject") is not True
    protocol = str(body.get("protocol") or "").lower()
    event: dict[str, Any] = {
        "type": "sign_in",
        "id": f"dovecot:{uuid.uuid4().hex}",
        "time": (received or datetime.now(UTC)).isoformat(),
        "user": mailbox_for_login(login),
        "ip": ip,
        "client_app": CLIENT_APPS.get(protocol, "other"),
        "result": "success" if success else "failure",
    }
    if protocol:
        event["user_agent"] = f"dovecot {protocol}" + (" (tls)" if body.get("tls") is True else "")
    country = country_of(ip)
    if country:
        event["country"] = country
    return event
