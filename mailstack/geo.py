"""The country of an IP address, from a local database only (no network on the sign-in path).

A MaxMind ``.mmdb`` (GeoLite2-Country, GeoIP2-Country or City) when ``MAILSTACK_GEOIP_MMDB`` names one, else
the database that ships inside the ``geoip2fast`` package. Either is loaded once per process; a look-up takes
microseconds. Private, loopback and unknown addresses have no country ("").
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable

from django.conf import settings

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_lookup: Callable[[str], str] | None = None
_loaded_for: str | None = None


def _mmdb_lookup(path: str) -> Callable[[str], str]:
    import maxminddb

    reader = maxminddb.open_database(path)

    def lookup(ip: str) -> str:
        record = reader.get(ip)
        if not isinstance(record, dict):
            return ""
        country = record.get("country") or record.get("registered_country") or {}
        return str(country.get("iso_code") or "") if isinstance(country, dict) else ""

    return lookup


def _embedded_lookup() -> Callable[[str], str]:
    from geoip2fast import GeoIP2Fast

    database = GeoIP2Fast(verbose=False)

    def lookup(ip: str) -> str:
        code = database.lookup(ip).country_code or ""
        return code if len(code) == 2 and code.isalpha() else ""

    return lookup


def _get() -> Callable[[str], str]:
    global _lookup, _loaded_for
    path = settings.MAILSTACK_GEOIP_MMDB or ""
    if _lookup is None or _loaded_for != path:
        with _lock:
            if _lookup is None or _loaded_for != path:
                _lookup = _mmdb_lookup(path) if path else _embedded_lookup()
                _loaded_for = path
    return _lookup


def source() -> str:
    """Which database answers, for the settings page."""
    path = settings.MAILSTACK_GEOIP_MMDB
    return f"MaxMind database {path}" if path else "embedded (geoip2fast package data)"


def country_of(ip: str) -> str:
    """The ISO 3166 alpha-2 country of ``ip``, or "" (private, loopback, unknown or unreadable)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    if not address.is_global:
        return ""
    try:
        return _get()(str(address)).upper()
    except Exception:  # a broken database must not break sign-ins: no country, logged
        logger.exception("GeoIP look-up failed for %s", ip)
        return ""
