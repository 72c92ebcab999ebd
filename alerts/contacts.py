"""The per-user contact baseline (``KnownContact``): which external domains and recipients each user has
written to, since when. Maintained incrementally, one batch at a time, before the detectors run.

``learn_contacts`` reads the external recipients of the batch's messages (one query), folds them per (user,
kind, value) and upserts them (on PostgreSQL, one COPY and one statement for the batch): ``first_seen`` (and
the message that first wrote) keeps the minimum over every message so far, so batches may arrive in any order
and re-running a batch changes nothing. A user the table knows nothing about yet (the table is new, or the
user's history was imported before it) is bootstrapped from their previous ``BOOTSTRAP`` of mail, so the first
batch after an upgrade does not take every correspondent for a first contact.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Exists, OuterRef

from core.sql import AnyOf
from mailboxes.models import Mailbox
from mailflow.models import MessageEvent

from .models import KnownContact

BOOTSTRAP = timedelta(days=30)
CHUNK = 1_000

# A row is written only when it is new or seen earlier than known: in the steady state (contacts already
# known), the statement reads the unique index and writes nothing. Rows go in key order, so concurrent batches
# lock shared rows in the same order.
_CONFLICT = """
ON CONFLICT (mailbox_id, kind, value) DO UPDATE SET
  first_event_id = excluded.first_event_id, first_seen = excluded.first_seen
WHERE excluded.first_seen < {table}.first_seen
"""
_STAGE = "alerts_known_contact_stage"

Key = tuple[int, str, str]  # (mailbox id, kind, value)


def learn_contacts(tenant_id: int, mailbox_ids: Iterable[int], start: datetime, end: datetime) -> int:
    """Fold the external recipients of the users' messages in ``[start, end]`` into their baseline (and
    bootstrap users it does not know from the ``BOOTSTRAP`` before ``start``). Returns the rows upserted."""
    ids = sorted(set(mailbox_ids))
    if not ids:
        return 0
    # One index probe per user (the unique index leads with the mailbox), not a scan of their contacts.
    known = set(
        Mailbox.objects.filter(AnyOf("pk", ids))
        .filter(Exists(KnownContact.objects.filter(mailbox_id=OuterRef("pk"))))
        .values_list("pk", flat=True)
    )
    unknown = [pk for pk in ids if pk not in known]
    seen: dict[Key, tuple[datetime, str]] = {}
    _fold(seen, tenant_id, ids, start, end)
    if unknown:
        _fold(seen, tenant_id, unknown, start - BOOTSTRAP, start)
    rows = [(tenant_id, *key, *value) for key, value in sorted(seen.items())]
    _upsert(rows)
    return len(rows)


def _fold(
    seen: dict[Key, tuple[datetime, str]], tenant_id: int, ids: list[int], start: datetime, end: datetime
) -> None:
    messages = (
        MessageEvent.objects.filter(
            AnyOf("sender_id", ids), tenant_id=tenant_id, time__gte=start, time__lte=end, external_count__gt=0
        )
        .values_list("sender_id", "event_id", "time", "recipients", "external_domains")
        .iterator(chunk_size=5_000)
    )
    for sender_id, event_id, at, recipients, domains in messages:
        outside = set(domains or ())
        values = [(KnownContact.Kind.DOMAIN.value, d) for d in outside]
        values += [
            (KnownContact.Kind.RECIPIENT.value, r)
            for r in recipients or ()
            if isinstance(r, str) and r.rpartition("@")[2] in outside
        ]
        for kind, value in values:
            key = (sender_id, kind, value[:320])
            current = seen.get(key)
            if current is None or (at, event_id) < current:
                seen[key] = (at, event_id)


def _upsert(rows: list[tuple]) -> None:
    """Upsert ``rows`` (tenant id, mailbox id, kind, value, first seen, first event id), in key order: on
    PostgreSQL by COPY into a staging table and one ``INSERT … SELECT`` (a multi-row ``VALUES`` of thousands
    of placeholders costs more to build and parse than the server takes to run it), elsewhere ``VALUES``
    in chunks."""
    if not rows:
        return
    table = connection.ops.quote_name(KnownContact._meta.db_table)
    conflict = _CONFLICT.format(table=table)
    columns = "tenant_id, mailbox_id, kind, value, first_seen, first_event_id"
    if connection.vendor != "postgresql":
        ops = connection.ops
        for chunk in range(0, len(rows), CHUNK):
            part = rows[chunk : chunk + CHUNK]
            params: list = []
            for tenant_id, mailbox_id, kind, value, first, event_id in part:
                params += [tenant_id, mailbox_id, kind, value, ops.adapt_datetimefield_value(first), event_id]
            values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(part))
            with connection.cursor() as cursor:
                cursor.execute(f"INSERT INTO {table} ({columns}) VALUES {values} {conflict}", params)  # noqa: S608
        return
    connection.ensure_connection()
    with transaction.atomic(), connection.wrap_database_errors, connection.connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (tenant_id bigint, mailbox_id bigint, kind text, "
            "value text, first_seen timestamptz, first_event_id text) ON COMMIT DELETE ROWS"
        )
        cursor.execute(f"TRUNCATE {_STAGE}")
        with cursor.copy(f"COPY {_STAGE} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {_STAGE} "  # noqa: S608 - our tables
            f"ORDER BY mailbox_id, kind, value {conflict}"
        )


def first_contacts(
    mailbox_ids: Iterable[int], kind: str, start: datetime, end: datetime
) -> dict[int, list[tuple[datetime, str, str]]]:
    """Per user, the contacts of ``kind`` first written to in ``[start, end]``: ``(first_seen, value,
    first_event_id)``, oldest first (one query)."""
    rows = (
        KnownContact.objects.filter(
            AnyOf("mailbox_id", mailbox_ids), kind=kind, first_seen__gte=start, first_seen__lte=end
        )
        .order_by("mailbox_id", "first_seen", "value")
        .values_list("mailbox_id", "first_seen", "value", "first_event_id")
    )
    found: dict[int, list[tuple[datetime, str, str]]] = {}
    for mailbox_id, at, value, event_id in rows:
        found.setdefault(mailbox_id, []).append((at, value, event_id))
    return found
