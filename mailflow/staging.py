"""Set-based dedup of an ingest batch against the id ledger (issue 17).

On PostgreSQL the batch's ledger rows are COPY'd into a session-local staging table; one ``INSERT … SELECT
… ON CONFLICT DO NOTHING RETURNING`` writes the new ones into ``IngestedEvent`` and names them; only when some
ids were already stored does one join read their content hashes (duplicates or conflicts). Nothing depends
on the batch size the way an ``IN (…)`` list does, and no ORM instance is built.

The staging table is ``TEMPORARY … ON COMMIT DELETE ROWS``: private to the connection, emptied at every
commit, and truncated before use (a batch may run inside an outer transaction). Elsewhere (SQLite, the
embedded mode) the same is a chunked ``IN`` lookup and a bulk insert.
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

STAGE = "mailflow_ingest_stage"
LEDGER_LOOKUP_CHUNK = 10_000
LEDGER_COLUMNS = ("tenant_id", "event_id", "type", "content_hash", "time", "received_at")


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def store_ledger_rows(
    tenant: Tenant, events: Sequence[ValidEvent], *, received_at: datetime
) -> dict[str, str]:
    """Write the ledger rows of the ``events`` (ids unique in the batch) not stored yet; return the content
    hash stored for each of the others (a duplicate when it is the event's, else a conflict).

    On PostgreSQL: COPY into the staging table, one ``INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING``
    into the ledger and, only when some ids were already there, one join to read their hashes. A concurrent
    batch storing the same id waits on the unique index and then finds it stored.
    """
    if not events:
        return {}
    if not _postgres():
        known = _known_ids(tenant, [e.id for e in events])
        insert_rows(
            IngestedEvent,
            LEDGER_COLUMNS,
            [
                (tenant.pk, e.id, e.type, e.content_hash, e.time, received_at)
                for e in events
                if e.id not in known
            ],
        )
        return known
    table = IngestedEvent._meta.db_table
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} (event_id text NOT NULL, type text NOT NULL, "
            "content_hash text NOT NULL, time timestamptz NOT NULL) ON COMMIT DELETE ROWS"
        )
        cursor.execute(f"TRUNCATE {STAGE}")
        with cursor.copy(f"COPY {STAGE} (event_id, type, content_hash, time) FROM STDIN") as copy:
            for event in events:
                copy.write_row((event.id, event.type, event.content_hash, event.time))
        # The ledger is partitioned by event time, so its unique key holds the time: an id stored at another
        # time is found by one probe per partition (the LATERAL … LIMIT 1 keeps the plan a nested loop of
        # index probes, whatever the planner guesses of the unanalysed staging table).
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(LEDGER_COLUMNS)}) "  # noqa: S608 - our table names
            f"SELECT %s, s.event_id, s.type, s.content_hash, s.time, %s FROM {STAGE} s "
            f"LEFT JOIN LATERAL (SELECT 1 AS hit FROM {table} l WHERE l.tenant_id = %s "
            "AND l.event_id = s.event_id LIMIT 1) k ON true WHERE k.hit IS NULL "
            "ON CONFLICT (tenant_id, event_id, time) DO NOTHING RETURNING event_id",
            (tenant.pk, received_at, tenant.pk),
        )
        inserted = {row[0] for row in cursor.fetchall()}
        if len(inserted) == len(events):
            return {}
        cursor.execute(
            f"SELECT s.event_id, k.content_hash FROM {STAGE} s CROSS JOIN LATERAL "  # noqa: S608 - our table names
            f"(SELECT l.content_hash FROM {table} l WHERE l.tenant_id = %s AND l.event_id = s.event_id "
            "ORDER BY l.content_hash = s.content_hash DESC LIMIT 1) k",
            (tenant.pk,),
        )
        return {event_id: stored for event_id, stored in cursor.fetchall() if event_id not in inserted}


def _known_ids(tenant: Tenant, ids: list[str]) -> dict[str, str]:
    known: dict[str, str] = {}
    for start in range(0, len(ids), LEDGER_LOOKUP_CHUNK):
        chunk = ids[start : start + LEDGER_LOOKUP_CHUNK]
        known.update(
            IngestedEvent.objects.filter(tenant=tenant, event_id__in=chunk).values_list(
                "event_id", "content_hash"
            )
        )
    return known
