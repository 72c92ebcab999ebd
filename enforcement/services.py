"""Writes of the enforcement app: the database restriction behind a breach the policy service saw, and the
accepted messages it hands to the ingest service."""

from __future__ import annotations

import logging
from datetime import datetime

from django.utils import timezone

from alerts.models import AlertPolicy
from alerts.services import ensure_default_policies
from core.models import Tenant
from mailboxes.services import MailboxChange, upsert_mailboxes
from mailflow.ingest import IngestResult, ingest_events, merge_message_details
from restricted_users import services as restrictions
from restricted_users import state
from restricted_users.models import Restriction

logger = logging.getLogger(__name__)

ACTOR_LABEL = "policy service"


def place_restriction(
    tenant_id: int, address: str, *, policy_name: str, reason: dict, expires_at: datetime | None
) -> Restriction | None:
    """Restrict ``address`` through :func:`restricted_users.services.restrict_user` (source
    ``policy_service``; the alert follows from ``alerts.restriction_placed``).

    The database has the last word on the same-day rule: when the mailbox was released today by this policy
    and the policy does not re-restrict, nothing is placed and the key the policy service set ahead of its row
    is removed. Returns the active restriction, or None when none was placed.
    """
    tenant = Tenant.objects.get(pk=tenant_id)
    now = timezone.now()
    address = address.strip().lower()
    policy = ensure_default_policies(tenant)[AlertPolicy.Kind.SENDING_LIMIT]
    mailbox = upsert_mailboxes(tenant, [MailboxChange(address=address, at=now)], source="postfix")[address]
    if not policy.rerestrict_after_release and restrictions.released_since(
        mailbox, restrictions.utc_midnight_before(now), policy_name=policy_name
    ):
        logger.info("Not restricting %s: released today and %s does not re-restrict", address, policy_name)
        _drop_provisional_key(tenant.slug, address)
        return None
    if expires_at is not None and expires_at <= now:
        return None  # the day it was meant for is over
    restriction, created = restrictions.restrict_user(
        mailbox,
        policy_name=policy_name,
        reason=reason,
        expires_at=expires_at,
        source=Restriction.Source.POLICY_SERVICE,
        actor_label=ACTOR_LABEL,
    )
    if not created:
        restrictions.refresh_redis_key(mailbox.pk)  # replace the provisional key by the row's
    return restriction


def _drop_provisional_key(tenant_slug: str, address: str) -> None:
    """Delete the key the policy service set at the breach, unless a database restriction backs it now."""
    client = state.get_redis()
    if client is None:
        return
    key = state.restriction_key(tenant_slug, address)
    value = state.read_restriction(tenant_slug, address, client=client)
    if value is not None and value.get("id") is None:
        client.delete(key)


def ingest_messages(tenant_id: int, events: list[dict]) -> IngestResult:
    """Store accepted messages through the ingest service in lenient mode (an invalid one, e.g. a sender
    outside the accepted domains, is rejected alone and logged). A message another source stored first under
    the same id (Rspamd, through the self-hosted mail connector: both use Postfix's queue id) gets what only
    Postfix knows (its size, the client address) merged in: it stays one event."""
    tenant = Tenant.objects.get(pk=tenant_id)
    result = ingest_events(tenant, events, mode="lenient", source="postfix")
    if result.conflicts:
        conflicting = set(result.conflicts)
        merge_message_details(tenant, [e for e in events if e.get("id") in conflicting])
    if result.rejected:
        logger.info("Policy service events: %d rejected (%s)", result.rejected, result.errors[:3])
    return result
