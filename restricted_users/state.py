"""The restriction state in Redis, shared by the restriction services (writers) and the Postfix policy service
(reader, DESIGN section 9). No ORM here: the policy service's hot path reads Redis and memory only.

Key ``soc:restricted:<tenant_slug>:<address>`` (address lowercase) exists while the user is restricted.
Its value is JSON ``{"id": <restriction id or null>, "policy_name": …, "expires_at": ISO time or null}``
and its TTL is the time left to the expiry (none for "until released"), so a key vanishes on time even if
beat is down. A key whose ``id`` is null was set by the policy service at a breach, ahead of its database
row; the resync keeps it (it carries its own TTL) until the row exists.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from functools import lru_cache

import redis
from django.conf import settings

KEY_PREFIX = "soc:restricted"


def restriction_key(tenant_slug: str, address: str) -> str:
    return f"{KEY_PREFIX}:{tenant_slug}:{address.strip().lower()}"


def key_pattern(tenant_slug: str | None = None) -> str:
    """A SCAN pattern for one tenant's keys, or every tenant's."""
    return f"{KEY_PREFIX}:{tenant_slug}:*" if tenant_slug else f"{KEY_PREFIX}:*"


def key_value(restriction_id: int | None, policy_name: str, expires_at: datetime | None) -> str:
    return json.dumps(
        {
            "id": restriction_id,
            "policy_name": policy_name,
            "expires_at": expires_at.isoformat() if expires_at else None,
        }
    )


def ttl_seconds(expires_at: datetime | None, now: datetime) -> int | None:
    """Seconds until ``expires_at`` rounded up (None: no expiry); 0 or less means already expired."""
    if expires_at is None:
        return None
    return math.ceil((expires_at - now).total_seconds())


def parse_value(raw: str | bytes | None) -> dict | None:
    """A key's value as a dict, or None when absent or unreadable."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@lru_cache(maxsize=4)
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2, decode_responses=True)


def get_redis() -> redis.Redis | None:
    """The Redis client for restriction keys, or None in embedded mode (no ``REDIS_URL``)."""
    url = getattr(settings, "REDIS_URL", "")
    return _client_for(url) if url else None


def read_restriction(tenant_slug: str, address: str, *, client: redis.Redis | None = None) -> dict | None:
    """The key's value for a user, or None when the user is not restricted (or Redis is not configured)."""
    client = client or get_redis()
    if client is None:
        return None
    raw = client.get(restriction_key(tenant_slug, address))
    if raw is None:
        return None
    # A key holding something unreadable still means "restricted": failing open would let mail out.
    return parse_value(raw) or {"id": None, "policy_name": "", "expires_at": None}


def is_restricted_in_redis(tenant_slug: str, address: str, *, client: redis.Redis | None = None) -> bool:
    """Whether Redis says the user may not send now."""
    return read_restriction(tenant_slug, address, client=client) is not None


# A disabled account (``soc:disabled:<tenant_slug>:<address>``): written by the connectors that disable an
# account (self-hosted mail), read by the Postfix policy service (every send refused at RCPT, like a
# restriction) and by Dovecot's authentication policy endpoint (every sign-in refused). Not a restriction:
# the restriction resync never touches these keys, and lifting one is the connector's undo, not a release.
DISABLED_PREFIX = "soc:disabled"


def disabled_key(tenant_slug: str, address: str) -> str:
    return f"{DISABLED_PREFIX}:{tenant_slug}:{address.strip().lower()}"


def disabled_pattern(tenant_slug: str) -> str:
    return f"{DISABLED_PREFIX}:{tenant_slug}:*"
