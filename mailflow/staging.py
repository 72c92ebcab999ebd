"""Set-based dedup of an ingest batch against the id ledger (issue 17).

On PostgreSQL the batch's ledger rows are COPY'd into a session-local staging table; one join against
``IngestedEvent`` then finds the ids already stored (duplicates or conflicts, by content hash), and one
``INSERT … SELECT`` writes the ledger rows of the new ones. Neither depends on the batch size the way
an ``IN (…)`` list does, and no ORM instance is built.

The staging table is ``TEMPORARY … ON COMMIT DELETE ROWS``: private to the connection, emptied at every
commit, and truncated before use (a batch may run inside an outer transaction). Elsewhere (SQLite, the
embedded mode) the same two steps are a chunked ``IN`` lookup and a bulk insert.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import IntegrityError, connection

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


def stage_and_find_known(tenant: Tenant, events: Sequence[ValidEvent]) -> dict[str, str]:
    """The content hash stored for each id of ``events`` (ids unique in the batch) already in the ledger.

    On PostgreSQL the events are staged first, for :func:`insert_new_ledger_rows`.
    """
    if not events:
        return {}
    if not _postgres():
        ids = [e.id for e in events]
        known: dict[str, str] = {}
        for start in range(0, len(ids), LEDGER_LOOKUP_CHUNK):
            chunk = ids[start : start + LEDGER_LOOKUP_CHUNK]
            known.update(
                IngestedEvent.objects.filter(tenant=tenant, event_id__in=chunk).values_list(
                    "event_id", "content_hash"
                )
            )
        return known
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
        cursor.execute(
            f"SELECT s.event_id, l.content_hash FROM {STAGE} s JOIN {IngestedEvent._meta.db_table} l "  # noqa: S608 - our table names, values are parameters
            "ON l.tenant_id = %s AND l.event_id = s.event_id",
            (tenant.pk,),
        )
        return dict(cursor.fetchall())


def insert_new_ledger_rows(tenant: Tenant, new: Sequence[ValidEvent], *, received_at: datetime) -> None:
    """Write the ledger rows of ``new`` (the staged events :func:`stage_and_find_known` did not find).

    On PostgreSQL one ``INSERT … SELECT`` from the staging table, skipping the ids found stored; when it
    writes fewer rows than expected, a concurrent batch stored some of these ids since the lookup, and
    ``IntegrityError`` makes the caller sort the batch again.
    """
    if not new:
        return
    if not _postgres():
        insert_rows(
            IngestedEvent,
            LEDGER_COLUMNS,
            [(tenant.pk, e.id, e.type, e.content_hash, e.time, received_at) for e in new],
        )
        return
    table = IngestedEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(LEDGER_COLUMNS)}) "  # noqa: S608 - our table names
            f"SELECT %s, s.event_id, s.type, s.content_hash, s.time, %s FROM {STAGE} s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} l WHERE l.tenant_id = %s AND l.event_id = s.event_id)",
            (tenant.pk, received_at, tenant.pk),
        )
        if cursor.rowcount != len(new):
            raise IntegrityError(
                f"ingest ledger: {len(new) - cursor.rowcount} id(s) stored concurrently since the lookup"
            )
