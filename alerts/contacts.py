"""The per-user contact baseline (``KnownContact``): which external domains and recipients each user has
written to, since when. Maintained incrementally, one batch at a time, before the detectors run.

``learn_contacts`` reads the external recipients of the batch's messages (one query), folds them per (user,
kind, value) and upserts them (on PostgreSQL, in one statement for the batch): ``first_seen`` (and the
message that first wrote) keeps the minimum over every message so far, so batches may arrive in any order
and re-running a batch changes nothing. A user the table knows nothing about yet (the table is new, or the
user's history was imported before it) is bootstrapped from their previous ``BOOTSTRAP`` of mail, so the first
batch after an upgrade does not take every correspondent for a first contact.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import connection
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
_COLUMNS = "tenant_id, mailbox_id, kind, value, first_seen, first_event_id"
# PostgreSQL: the fold of :func:`_fold`, set-based. Per (user, kind, value), the earliest (time, event id)
# of the messages, the event ids compared by code point as Python does (COLLATE "C"); a recipient counts when
# the part after its last "@" is one of the message's external domains; values cut to 320 characters.
_MESSAGES = """
SELECT tenant_id, sender_id, time, event_id, recipients, external_domains FROM {messages}
WHERE tenant_id = %s AND sender_id = ANY(%s::bigint[]) AND time >= %s AND time <= %s AND external_count > 0
"""
_LEARN = """
INSERT INTO {table} ({columns})
SELECT DISTINCT ON (m.sender_id, v.kind, v.value)
    m.tenant_id, m.sender_id, v.kind, v.value, m.time, m.event_id
FROM ({messages} UNION ALL {messages}) AS m  -- messages of the batch, then of the bootstraps
CROSS JOIN LATERAL (
    SELECT 'domain' AS kind, left(d.value, 320) AS value
    FROM jsonb_array_elements_text(m.external_domains) AS d
    UNION ALL
    SELECT 'recipient', left(r.value #>> '{{}}', 320) FROM jsonb_array_elements(m.recipients) AS r
    WHERE jsonb_typeof(r.value) = 'string' AND m.external_domains ? split_part(r.value #>> '{{}}', '@', -1)
) AS v
ORDER BY m.sender_id, v.kind, v.value, m.time, m.event_id COLLATE "C"
{conflict}
"""

Key = tuple[int, str, str]  # (mailbox id, kind, value)


def learn_contacts(tenant_id: int, mailbox_ids: Iterable[int], start: datetime, end: datetime) -> None:
    """Fold the external recipients of the users' messages in ``[start, end]`` into their baseline (and
    bootstrap users it does not know from the ``BOOTSTRAP`` before ``start``): in one statement on
    PostgreSQL (no message leaves the server), in Python elsewhere; both write the same rows
    (``tests/alerts/test_detection_differential.py``)."""
    ids = sorted(set(mailbox_ids))
    if not ids:
        return
    # One index probe per user (the unique index leads with the mailbox), not a scan of their contacts.
    known = set(
        Mailbox.objects.filter(AnyOf("pk", ids))
        .filter(Exists(KnownContact.objects.filter(mailbox_id=OuterRef("pk"))))
        .values_list("pk", flat=True)
    )
    unknown = [pk for pk in ids if pk not in known]
    if connection.vendor == "postgresql":
        _learn_in_sql(tenant_id, ids, unknown, start, end)
    else:
        _learn_in_python(tenant_id, ids, unknown, start, end)


def _learn_in_sql(tenant_id: int, ids: list[int], unknown: list[int], start: datetime, end: datetime) -> None:
    quote = connection.ops.quote_name
    table = quote(KnownContact._meta.db_table)
    messages = _MESSAGES.format(messages=quote(MessageEvent._meta.db_table))
    conflict = _CONFLICT.format(table=table)
    sql = _LEARN.format(table=table, columns=_COLUMNS, messages=messages, conflict=conflict)
    with connection.cursor() as cursor:
        cursor.execute(sql, [tenant_id, ids, start, end, tenant_id, unknown, start - BOOTSTRAP, start])


def _learn_in_python(
    tenant_id: int, ids: list[int], unknown: list[int], start: datetime, end: datetime
) -> None:
    seen: dict[Key, tuple[datetime, str]] = {}
    _fold(seen, tenant_id, ids, start, end)
    if unknown:
        _fold(seen, tenant_id, unknown, start - BOOTSTRAP, start)
    rows = [(tenant_id, *key, *value) for key, value in sorted(seen.items())]
    table = connection.ops.quote_name(KnownContact._meta.db_table)
    adapt = connection.ops.adapt_datetimefield_value
    for chunk in range(0, len(rows), CHUNK):
        part = rows[chunk : chunk + CHUNK]
        params: list = []
        for tenant, mailbox_id, kind, value, first, event_id in part:
            params += [tenant, mailbox_id, kind, value, adapt(first), event_id]
        values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(part))
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({_COLUMNS}) VALUES {values} {_CONFLICT.format(table=table)}",  # noqa: S608
                params,
            )


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
