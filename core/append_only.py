"""The one privileged path around the append-only triggers of the audit trail and the change feed.

The triggers (migration ``core.0004``) refuse DELETE unless the current transaction holds the purge permit.
:func:`purge_permit` grants it for one transaction only; ``manage.py purge_audit_trail`` is its only caller.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from django.db import connection, transaction


@contextmanager
def purge_permit() -> Iterator[None]:
    """Allow DELETE on the append-only tables inside this block's transaction (and only there)."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL soc.allow_purge = 'on'")
            yield
            cursor.execute("SET LOCAL soc.allow_purge = 'off'")
        else:
            cursor.execute("INSERT INTO soc_purge_permit (granted) VALUES (1)")
            yield
            cursor.execute("DELETE FROM soc_purge_permit")


def purge_audit_trail(before: datetime, *, actor_label: str) -> int:
    """Delete audit events older than ``before``; returns how many. The purge itself is audited (that row is
    newer than the cut-off, so the trail always says when and by whom it was shortened)."""
    from .models import AuditEvent
    from .services import record_audit

    with purge_permit():
        old = AuditEvent.objects.filter(at__lt=before)
        deleted = old._raw_delete(old.db)
        record_audit(
            "core.audit.purged",
            actor_label=actor_label,
            after={"before": before.isoformat(), "deleted": deleted},
        )
    return deleted
