"""Where a webhook may be sent: public addresses only, unless the administrator allows private ones.

A webhook URL is a request the console makes on an administrator's behalf; without this check it is a blind
scanner of the console's own network (``http://127.0.0.1:6379/``, a cloud metadata address, the LAN). So
loopback, private, link-local, multicast, reserved and other non-global addresses are refused when an
endpoint is saved and again at every delivery, unless ``WEBHOOK_ALLOW_PRIVATE_TARGETS`` is on.

At delivery the host is resolved once, every address it resolves to is checked, and the connection goes to
exactly the checked address (the Host header, TLS SNI and certificate check still use the name), so a DNS
answer that changes between the check and the connect (rebinding) cannot redirect the request.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from .exceptions import EndpointError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(EndpointError):
    """The URL's host is, or resolves to, an address webhooks may not reach."""


@dataclass(frozen=True)
class Target:
    """A checked destination: connect to one of ``addresses`` (in order); speak HTTP(S) to ``host``."""

    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]
    path: str  # path and query, as sent in the request line

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def refusal(address: IPAddress) -> str | None:
    """Why webhooks may not reach ``address`` (None: a public address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for attribute, label in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
        ("is_private", "private"),
    ):
        if getattr(address, attribute):
            return f"{address} is a {label} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the network edge: tests replace this function)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _split(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointError("Give an http:// or https:// URL.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise EndpointError("The URL's port is not a number between 1 and 65535.") from exc
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return parts.scheme, parts.hostname, port, path


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _check(addresses: list[str], host: str) -> None:
    if settings.WEBHOOK_ALLOW_PRIVATE_TARGETS:
        return
    for text in addresses:
        reason = refusal(ipaddress.ip_address(text.split("%", 1)[0]))
        if reason:
            subject = host if text == host else f"{host} ({text})"
            raise TargetRefused(
                f"Webhooks may not reach {subject}: {reason}. An administrator can allow private targets "
                "with WEBHOOK_ALLOW_PRIVATE_TARGETS=true."
            )


def check_url(url: str) -> None:
    """Save-time check: refuse a URL whose host is, or now resolves to, an address webhooks may not reach.

    A name that does not resolve yet is accepted: the delivery resolves and checks it again anyway.
    """
    _, host, port, _ = _split(url)
    if (literal := _literal(host)) is not None:
        _check([str(literal)], host)
        return
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        return
    _check(addresses, host)


def pin(url: str) -> Target:
    """Delivery-time check: resolve once, check every address, return them as the only ones to connect to."""
    scheme, host, port, path = _split(url)
    if (literal := _literal(host)) is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise OSError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise OSError(f"cannot resolve {host}")
    _check(addresses, host)
    return Target(scheme=scheme, host=host, port=port, addresses=tuple(addresses), path=path)
