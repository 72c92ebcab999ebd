"""Redis state of the self-hosted mail endpoints: the hot path of Dovecot's authentication policy and of the
Rspamd exporter touches Redis and memory only (DESIGN section 13).

- ``soc:mailstack:<tenant>:events`` (list): events waiting for the ingest service (JSON each), drained in
  batches by ``mailstack.ingest_pending`` (one task per burst) and by beat;
- ``soc:mailstack:<tenant>:fail:u:<login>`` / ``…:fail:ip:<address>`` (counters with the tarpit window as
  TTL): recent failed sign-ins;
- ``soc:mailstack:<tenant>:status`` (hash): per source (``rspamd``, ``dovecot``, ``sieve``) the time of the
  last request and of its event, counts, and the last error, for the Mail servers page;
- the disabled-account keys of :mod:`restricted_users.state` (shared with the Postfix policy service).
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from django.conf import settings
from redis.typing import EncodableT, FieldT

from restricted_users.state import disabled_key, disabled_pattern, get_redis

PREFIX = "soc:mailstack"
EVENTS_CAPACITY = 200_000
SOURCES = ("rspamd", "dovecot", "sieve")

__all__ = ["disabled_key", "disabled_pattern", "get_redis"]


def events_key(tenant_slug: str) -> str:
    return f"{PREFIX}:{tenant_slug}:events"


def status_key(tenant_slug: str) -> str:
    return f"{PREFIX}:{tenant_slug}:status"


def user_failures_key(tenant_slug: str, login: str) -> str:
    return f"{PREFIX}:{tenant_slug}:fail:u:{login.strip().lower()}"


def ip_failures_key(tenant_slug: str, ip: str) -> str:
    return f"{PREFIX}:{tenant_slug}:fail:ip:{ip}"


def client() -> redis.Redis:
    found = get_redis()
    if found is None:
        raise RuntimeError("The self-hosted mail endpoints need Redis (REDIS_URL).")
    return found


def queue_event(
    tenant_slug: str, event: dict[str, Any], *, source: str, pipe: redis.client.Pipeline | None = None
) -> int:
    """Append ``event`` for the ingest service and note the source's activity; returns the list's length
    (1: the first of a burst, the caller enqueues the drain). Past the capacity the event is dropped."""
    now = time.time()
    own = pipe is None
    pipe = pipe if pipe is not None else client().pipeline(transaction=False)
    pipe.rpush(events_key(tenant_slug), json.dumps(event, separators=(",", ":")))
    pipe.hset(status_key(tenant_slug), mapping={f"{source}:last_at": now, f"{source}:event_at": now})
    pipe.hincrby(status_key(tenant_slug), f"{source}:count", 1)
    if own:
        length = pipe.execute()[0]
        if length > EVENTS_CAPACITY:
            client().rpop(events_key(tenant_slug))
            note(tenant_slug, source, dropped=1)
        return length
    return 0


def note(tenant_slug: str, source: str, *, error: str = "", dropped: int = 0, skipped: int = 0) -> None:
    """Record a source's request that produced no event (skipped), or an error, for the status page."""
    now = time.time()
    values: dict[FieldT, EncodableT] = {f"{source}:last_at": now}
    if error:
        values[f"{source}:error"] = error[:500]
        values[f"{source}:error_at"] = now
    try:
        pipe = client().pipeline(transaction=False)
        pipe.hset(status_key(tenant_slug), mapping=values)
        if dropped:
            pipe.hincrby(status_key(tenant_slug), f"{source}:dropped", dropped)
        if skipped:
            pipe.hincrby(status_key(tenant_slug), f"{source}:skipped", skipped)
        pipe.execute()
    except (redis.RedisError, RuntimeError):
        pass  # the status is best effort (no Redis at all in embedded mode); the caller's answer matters more


def read_status(tenant_slug: str) -> dict[str, dict[str, Any]]:
    """Per source: ``last_at``, ``event_at`` (epoch seconds or None), ``count``, ``skipped``, ``dropped``,
    ``error`` and ``error_at``; and the number of events waiting."""
    try:
        raw = client().hgetall(status_key(tenant_slug))
        waiting = client().llen(events_key(tenant_slug))
    except (redis.RedisError, RuntimeError) as exc:
        return {"redis": {"error": str(exc)}}
    values = {
        k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
        for k, v in raw.items()
    }
    result: dict[str, dict[str, Any]] = {}
    for source in SOURCES:
        entry: dict[str, Any] = {}
        for name in ("last_at", "event_at", "error_at"):
            value = values.get(f"{source}:{name}")
            entry[name] = float(value) if value else None
        for name in ("count", "skipped", "dropped"):
            entry[name] = int(values.get(f"{source}:{name}") or 0)
        entry["error"] = values.get(f"{source}:error", "")
        result[source] = entry
    result["queue"] = {"waiting": waiting}
    return result


def tarpit_limits() -> tuple[int, int, int]:
    return (
        settings.MAILSTACK_TARPIT_AFTER_FAILURES,
        settings.MAILSTACK_TARPIT_WINDOW_SECONDS,
        settings.MAILSTACK_TARPIT_SECONDS,
    )
