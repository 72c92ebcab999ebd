"""Periodic housekeeping of restrictions (beat queue): thin wrappers over the services, both idempotent."""

from core.queueing import domain_task

from . import services


@domain_task("restricted_users.beat_tidy")
def beat_tidy() -> None:
    """Close restrictions whose expiry has passed (being restricted never depends on this having run)."""
    services.tidy_expired()


@domain_task("restricted_users.beat_resync_redis")
def beat_resync_redis() -> None:
    """Rewrite the Redis restriction keys from the database and remove stale ones (every minute)."""
    services.sync_restrictions_to_redis()
