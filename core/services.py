"""Writes of core: the audit trail, the change feed and its outbox, API tokens, heartbeats."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models, transaction
from django.utils import timezone

from .context import current_request_id
from .exceptions import TokenError
from .feed import declaration_of
from .models import ApiToken, AuditEvent, ChangeFeedEntry, Heartbeat, OutboxMessage, Tenant, hash_token
from .queueing import enqueue

SYSTEM_ACTOR = "system"


def record_audit(
    action: str,
    *,
    target: models.Model | None = None,
    actor: User | None = None,
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
    if getattr(settings, "AUDIT_ACTIONS_STRICT", False) and declaration_of(action) is None:
        raise ImproperlyConfigured(
            f"Audit action {action!r} is not declared: add it to its app's audit_kinds.py with the "
            "change-feed kind it publishes, or as internal with the reason (core/feed.py)."
        )
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


def audit_change(
    action: str,
    target: models.Model,
    *,
    actor: User | None,
    before: Any,
    public: Callable[[Any], Any],
) -> AuditEvent:
    """Audit a change of ``target``: ``before`` and its state now, both as ``public`` renders it (the fields
    the trail may hold: never a secret)."""
    return record_audit(action, target=target, actor=actor, before=before, after=public(target))


def audit_field_change(
    action: str,
    target: models.Model,
    *,
    field: str,
    before: Any,
    after: Any,
    actor: User | None = None,
    actor_label: str = "",
) -> AuditEvent:
    """Audit a change of one field of ``target``: ``{field: before}`` → ``{field: after}``."""
    return record_audit(
        action,
        target=target,
        actor=actor,
        actor_label=actor_label,
        before={field: before},
        after={field: after},
    )


def record_connection_test(
    connection: models.Model, action: str, *, ok: bool, message: str, actor: User | None, **more: Any
) -> None:
    """Save the outcome of testing a mail platform connection (``tested_at``, ``test_ok``, ``test_message``,
    and the ``more`` fields the platform keeps) and audit it as ``action``, in one transaction."""
    values = {"tested_at": timezone.now(), "test_ok": ok, "test_message": message, **more}
    with transaction.atomic():
        for name, value in values.items():
            setattr(connection, name, value)
        connection.save(update_fields=list(values))
        record_audit(action, target=connection, actor=actor, after={"ok": ok, "message": message})


def create_api_token(tenant: Tenant, *, actor: User, name: str, scope: str) -> tuple[ApiToken, str]:
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


def revoke_api_token(token: ApiToken, *, actor: User) -> ApiToken:
    """Revoke a token at once; revoking a revoked token changes nothing."""
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().get(pk=token.pk)
        if token.revoked_at is not None:
            return token
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_field_change(
            "core.api_token.revoked", token, actor=actor, field="active", before=True, after=False
        )
    return token


def record_heartbeat(name: str) -> Heartbeat:
    """Mark a periodic process as alive now."""
    heartbeat, _ = Heartbeat.objects.update_or_create(name=name, defaults={"last_seen": timezone.now()})
    return heartbeat


# ------------------------------------------------------------------------------------------------ change feed

DISPATCH_TASK = "notifications.dispatch"
# Any constant: the PostgreSQL advisory lock that serializes the feed sequencer.
_SEQUENCER_LOCK = 0x50C_FEED


class DispatchOnCommit:
    """The on-commit hook enqueuing one ``notifications.dispatch`` per transaction, however many changes."""

    def __call__(self) -> None:
        enqueue(DISPATCH_TASK)


def publish_change(
    kind: str, *, target: models.Model, payload: dict[str, Any], tenant: Tenant | None = None
) -> ChangeFeedEntry:
    """Append a change-feed entry and its outbox message for a change a person or a SIEM should hear about.

    Call it inside the transaction of the change: a rollback removes both, a commit enqueues
    ``notifications.dispatch`` by name (once per transaction; core never imports notifications). ``payload``
    is the kind-specific ``data`` of the document (JSON primitives only, no telemetry bodies).
    """
    tenant_id = tenant.pk if tenant is not None else _tenant_id_of(target)
    with transaction.atomic():
        entry = ChangeFeedEntry.objects.create(
            kind=kind,
            tenant_id=tenant_id,
            target_type=target._meta.label_lower,
            target_id=str(target.pk),
            payload=payload,
        )
        slug = (
            Tenant.objects.filter(pk=tenant_id).values_list("slug", flat=True).first() if tenant_id else None
        )
        OutboxMessage.objects.create(
            kind=kind, tenant_id=tenant_id, change=entry, payload=entry.as_document(tenant_slug=slug)
        )
    if DISPATCH_TASK in current_app.tasks:
        conn = transaction.get_connection()
        # One dispatch per transaction, unless the hook already queued sits in a savepoint that may roll back.
        live = set(conn.savepoint_ids)
        if not any(
            isinstance(hook, DispatchOnCommit) and set(sids) <= live for sids, hook, _ in conn.run_on_commit
        ):
            transaction.on_commit(DispatchOnCommit())
    return entry


def _tenant_id_of(target: models.Model) -> int | None:
    if isinstance(target, Tenant):
        return target.pk
    return getattr(target, "tenant_id", None)


def sequence_changes(batch: int = 10_000) -> int:
    """Give committed, unsequenced change-feed entries their feed position, in id order; returns how many.

    Why a second, commit-ordered number and not the id: ids come from a sequence when the row is inserted,
    but transactions commit in any order, so a reader paging by id could see id 11 (committed) while id 10 is
    still in flight and then never look back: a lost entry. A safety lag ("only rows older than 2 s") narrows
    that window without closing it (a slow transaction, a clock step). Here one sequencer at a time (a
    transaction-scoped advisory lock on PostgreSQL; SQLite serializes writers anyway) numbers the rows it
    can see, after every position already given. A row that commits later is numbered later, so positions
    grow in the order rows became visible, and ``position > cursor`` never skips nor repeats a row.
    Readers call it before reading; ``notifications.dispatch`` calls it too, so positions keep up.
    """
    table = ChangeFeedEntry._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SEQUENCER_LOCK])
        cursor.execute(
            f"""
            UPDATE {table} SET position = numbered.base + numbered.rn
            FROM (
                SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS rn,
                       (SELECT COALESCE(MAX(position), 0) FROM {table}) AS base
                FROM {table} WHERE position IS NULL ORDER BY id LIMIT %s
            ) AS numbered
            WHERE {table}.id = numbered.id
            """,  # noqa: S608 - the table name is ours, the only value is a parameter
            [batch],
        )
        return cursor.rowcount


def read_feed(*, cursor: int, limit: int, tenant: Tenant | None = None) -> tuple[list[ChangeFeedEntry], int]:
    """The entries after ``cursor`` (a position), oldest first, at most ``limit``; and the next cursor.

    The next cursor is the last returned position, or ``cursor`` itself when nothing new committed, so a
    consumer simply passes back what it was given.
    """
    sequence_changes()
    entries = ChangeFeedEntry.objects.sequenced().filter(position__gt=cursor).select_related("tenant")
    if tenant is not None:
        entries = entries.filter(tenant=tenant)
    page = list(entries[:limit])
    last = page[-1].position if page else None  # sequenced(): never None on a returned entry
    return page, cursor if last is None else last
