"""Set-based dedup of an ingest batch against the id ledger (issue 17).

The ids a batch names that the ledger already holds are read with one query (on PostgreSQL an index probe
per id through ``event_id = ANY(%s)``, one array parameter whatever the batch size); the ledger rows of the
others are then written by COPY (``core.bulk.insert_rows``) straight into ``IngestedEvent``: no staging table,
no ``INSERT … SELECT``, no ``RETURNING`` to read back. A concurrent batch storing one of the same new ids
first makes the COPY fail on the unique index; the ingest service rolls the batch back and sorts it again
(``mailflow.ingest._ATTEMPTS``), and the second pass finds the id stored. Elsewhere (SQLite, the embedded
mode) the lookup is a chunked ``IN`` and the insert a ``bulk_create``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import connection

from core.bulk import insert_rows
from core.models import Tenant

from .models import IngestedEvent

if TYPE_CHECKING:
    from .validation import ValidEvent

LEDGER_LOOKUP_CHUNK = 10_000
LEDGER_COLUMNS = ("tenant_id", "event_id", "type", "content_hash", "time", "received_at")


def store_ledger_rows(
    tenant: Tenant, events: Sequence[ValidEvent], *, received_at: datetime
) -> dict[str, str]:
    """Write the ledger rows of the ``events`` (ids unique in the batch) not stored yet; return the content
    hash stored for each of the others (a duplicate when it is the event's, else a conflict).

    One lookup of the ids already stored, then one COPY of the new rows. A concurrent batch that stores one
    of the new ids between the two makes the COPY raise ``IntegrityError`` (the caller retries the batch).
    """
    if not events:
        return {}
    known = _known_ids(tenant, [e.id for e in events])
    received = received_at.isoformat()  # times as ISO text (the normal form's): COPY formats no datetime
    insert_rows(
        IngestedEvent,
        LEDGER_COLUMNS,
        [
            (tenant.pk, e.id, e.type, e.content_hash, e.data["time"], received)
            for e in events
            if e.id not in known
        ],
    )
    return known


def _known_ids(tenant: Tenant, ids: list[str]) -> dict[str, str]:
    """The content hash stored for each of ``ids`` the ledger holds for ``tenant``."""
    if connection.vendor == "postgresql":
        table = IngestedEvent._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT event_id, content_hash FROM {table} "  # noqa: S608 - our table name
                "WHERE tenant_id = %s AND event_id = ANY(%s)",
                (tenant.pk, ids),
            )
            return dict(cursor.fetchall())
    known: dict[str, str] = {}
    for start in range(0, len(ids), LEDGER_LOOKUP_CHUNK):
        chunk = ids[start : start + LEDGER_LOOKUP_CHUNK]
        known.update(
            IngestedEvent.objects.filter(tenant=tenant, event_id__in=chunk).values_list(
                "event_id", "content_hash"
            )
        )
    return known
