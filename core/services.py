"""Writes of core: the audit trail, API tokens, heartbeats."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.utils import timezone

from .context import current_request_id
from .exceptions import TokenError
from .models import ApiToken, AuditEvent, Heartbeat, Tenant, hash_token

SYSTEM_ACTOR = "system"


def record_audit(
    action: str,
    *,
    target: models.Model | None = None,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    tenant: Tenant | None = None,
    before: Any = None,
    after: Any = None,
    comment: str = "",
    request_id: str = "",
) -> AuditEvent:
    """Append one audit row: who (a user, else ``actor_label``, else "system"), what, on which target, when.

    Call it inside the same transaction as the change it records.
    """
    if tenant is None and target is not None:
        tenant = target if isinstance(target, Tenant) else getattr(target, "tenant", None)
    if actor is not None and not actor.is_authenticated:
        actor = None
    return AuditEvent.objects.create(
        actor=actor,
        actor_label=(actor.get_username() if actor is not None else actor_label) or SYSTEM_ACTOR,
        action=action,
        tenant=tenant,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:300] if target is not None else "",
        before=before,
        after=after,
        comment=comment,
        request_id=request_id or current_request_id.get(),
    )


def create_api_token(
    tenant: Tenant, *, actor: AbstractBaseUser, name: str, scope: str
) -> tuple[ApiToken, str]:
    """Create a token for ``tenant``; returns it with the raw secret, which is never stored and shown once."""
    name = name.strip()
    if not name:
        raise TokenError("A token needs a name.")
    if scope not in ApiToken.Scope.values:
        raise TokenError(f"Unknown scope {scope!r}.")
    raw, prefix = ApiToken.generate()
    with transaction.atomic():
        token = ApiToken.objects.create(
            name=name, tenant=tenant, scope=scope, prefix=prefix, key_hash=hash_token(raw), created_by=actor
        )
        record_audit(
            "core.api_token.created", target=token, actor=actor, after={"name": name, "scope": scope}
        )
    return token, raw


def revoke_api_token(token: ApiToken, *, actor: AbstractBaseUser) -> ApiToken:
    """Revoke a token at once; revoking a revoked token changes nothing."""
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().get(pk=token.pk)
        if token.revoked_at is not None:
            return token
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record_audit(
            "core.api_token.revoked",
            target=token,
            actor=actor,
            before={"active": True},
            after={"active": False},
        )
    return token


def record_heartbeat(name: str) -> Heartbeat:
    """Mark a periodic process as alive now."""
    heartbeat, _ = Heartbeat.objects.update_or_create(name=name, defaults={"last_seen": timezone.now()})
    return heartbeat
