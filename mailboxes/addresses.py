"""Address and domain syntax, shared by the directory services and the ingest validation.

Addresses are case-insensitive: they are lowercased before they are checked, stored or compared.
Internationalised domains are accepted in their ASCII (``xn--``) form.
"""

from __future__ import annotations

import re

from django.conf import settings

MAX_ADDRESS_LENGTH = 254
MAX_DOMAIN_LENGTH = 253

_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_TLD = r"(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})"
DOMAIN_RE = re.compile(rf"^(?:{_LABEL}\.)+{_TLD}$")
ADDRESS_RE = re.compile(rf"^(?P<local>{_ATOM}(?:\.{_ATOM})*)@(?P<domain>(?:{_LABEL}\.)+{_TLD})$")


def normalize_address(address: str) -> str:
    """The stored form of an address: surrounding space removed, lowercased."""
    return address.strip().lower()


def base_address(address: str, delimiter: str | None = None) -> str:
    """The mailbox a sub-address belongs to: ``user+tag@domain`` is ``user@domain`` (Postfix's
    ``recipient_delimiter``; ``RECIPIENT_DELIMITER`` setting, ``+`` by default, empty for none). Each
    character of the setting is a delimiter; the local part is cut at the first one, unless that would leave
    it empty.
    """
    delimiters = settings.RECIPIENT_DELIMITER if delimiter is None else delimiter
    local, at, domain = address.rpartition("@")
    if not at or not delimiters:
        return address
    cut = min((i for i in map(local.find, delimiters) if i > 0), default=-1)
    return f"{local[:cut]}@{domain}" if cut > 0 else address


def domain_of(address: str) -> str:
    """The domain part of an address, lowercased."""
    return address.rpartition("@")[2].lower()


def is_valid_domain(domain: str) -> bool:
    """A DNS name with at least two labels (``example.com``), already lowercased."""
    return len(domain) <= MAX_DOMAIN_LENGTH and DOMAIN_RE.match(domain) is not None


def is_valid_address(address: str) -> bool:
    """``local@domain`` in its lowercased form: a dot-atom local part of at most 64 characters and a valid
    domain.
    """
    if len(address) > MAX_ADDRESS_LENGTH:
        return False
    match = ADDRESS_RE.match(address)
    return match is not None and len(match["local"]) <= 64 and len(match["domain"]) <= MAX_DOMAIN_LENGTH


# Inbox-rule actions that send mail elsewhere (DESIGN section 4).
FORWARD_ACTIONS = ("forward_to", "redirect_to")


def addresses_in(value: object) -> list[str]:
    """Addresses named by a forwarding value: one address (or a ``;``/``,`` separated list), a list of
    them, or ``{"address": …}`` objects; normalised. Anything else names none."""
    if isinstance(value, str):
        return [normalize_address(part) for part in re.split(r"[;,]", value) if part.strip()]
    if isinstance(value, dict):
        return addresses_in(value.get("address") or value.get("email"))
    if isinstance(value, list | tuple):
        return [address for item in value for address in addresses_in(item)]
    return []


def rule_forward_targets(actions: dict) -> dict[str, list[str]]:
    """The addresses a rule forwards or redirects to, by action (only the actions present)."""
    targets = {action: addresses_in(actions.get(action)) for action in FORWARD_ACTIONS}
    return {action: addresses for action, addresses in targets.items() if addresses}


def is_external(address: str, accepted_domains: set[str]) -> bool:
    """Whether mail to ``address`` leaves the tenant (its domain is not one of the accepted domains)."""
    return domain_of(address) not in accepted_domains
