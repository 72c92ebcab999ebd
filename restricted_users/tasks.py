"""Periodic housekeeping of restrictions (beat queue): thin wrappers over the services, both idempotent."""

from celery import shared_task
from django.db import OperationalError

from . import services


@shared_task(
    name="restricted_users.beat_tidy", ignore_result=True, autoretry_for=(OperationalError,), max_retries=2
)
def beat_tidy() -> None:
    """Close restrictions whose expiry has passed (being restricted never depends on this having run)."""
    services.tidy_expired()


@shared_task(name="restricted_users.beat_resync_redis", ignore_result=True)
def beat_resync_redis() -> None:
    """Rewrite the Redis restriction keys from the database and remove stale ones (every minute)."""
    services.sync_restrictions_to_redis()
