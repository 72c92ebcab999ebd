"""Celery tasks of the self-hosted mail connector (queue ``pull``; ``beat_*`` on ``beat``). Thin wrappers."""

from __future__ import annotations

from core.queueing import domain_task, fan_out

from .doveadm import Unreachable
from .models import MailstackConnection


@domain_task("mailstack.ingest_pending")
def ingest_pending(tenant_id: int) -> None:
    """Store the events the endpoints queued for a tenant (one task per burst; idempotent by event id)."""
    from .services import drain_events

    drain_events(tenant_id)


@domain_task("mailstack.beat_drain")
def beat_drain() -> int:
    """A safety net for a lost burst task: drain every connected tenant's queue."""
    return fan_out(
        ingest_pending, list(MailstackConnection.objects.enabled().values_list("tenant_id", flat=True))
    )


@domain_task("mailstack.read_sieve", retry_on=(Unreachable,))
def read_sieve(connection_id: int) -> None:
    """Read the tenant's Sieve scripts through doveadm and ingest what changed."""
    from .services import read_sieve as read

    connection = MailstackConnection.objects.enabled_one(connection_id)
    if connection is not None:
        read(connection)


@domain_task("mailstack.beat_read_sieve")
def beat_read_sieve() -> int:
    """Enqueue a Sieve read of every enabled connection whose last read is older than the interval."""
    from .services import sieve_read_due

    return fan_out(read_sieve, [c.pk for c in MailstackConnection.objects.enabled() if sieve_read_due(c)])


@domain_task("mailstack.beat_sync_disabled")
def beat_sync_disabled() -> int:
    """Rewrite the disabled-account keys of every connected tenant from the directory."""
    from .services import sync_disabled_keys

    return sum(
        sync_disabled_keys(c.tenant) for c in MailstackConnection.objects.enabled().select_related("tenant")
    )
