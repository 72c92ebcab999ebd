"""The database side of the policy service: a breach's restriction, accepted messages (thin wrappers)."""

from __future__ import annotations

from datetime import datetime

from core.queueing import domain_task

from . import services


@domain_task("enforcement.place_restriction")
def place_restriction(
    tenant_id: int, address: str, policy_name: str, reason: dict, expires_at: str | None
) -> None:
    """Record the restriction the policy service already enforces in Redis (idempotent: ``restrict_user``
    keeps one active restriction per mailbox, so a redelivery or the detector finding the same breach adds
    nothing)."""
    services.place_restriction(
        tenant_id,
        address,
        policy_name=policy_name,
        reason=reason,
        expires_at=datetime.fromisoformat(expires_at) if expires_at else None,
    )


@domain_task("enforcement.ingest_messages")
def ingest_messages(tenant_id: int, events: list[dict]) -> None:
    """Store one batch of messages the policy service accepted as ``message`` events (lenient ingest:
    idempotent by event id, so a redelivered batch stores nothing twice)."""
    services.ingest_messages(tenant_id, events)
