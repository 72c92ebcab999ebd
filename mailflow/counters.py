"""Rolling per-user counters of sent mail (issue 17): one :class:`~mailflow.models.SendingMinute` row per
(sender, minute of event time), kept by the ingest service in the batch's transaction.

:func:`count_sent` adds a batch's messages with one upsert (``ON CONFLICT … DO UPDATE SET n = n +
excluded.n``, on PostgreSQL and SQLite alike); :func:`busiest_windows` answers, for the users of a batch, the
largest sum of each counter over any rolling window (an hour, a day) that ends in a range of minutes, with one
window-function query over their minute rows. A window of ``W`` minutes ending at a message of minute ``m``
holds messages of minutes ``m − W … m`` only, so the sum over those ``W + 1`` minute rows is never below the
exact count: a user whose bound stays within a limit cannot breach it; only the others need their messages
read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from django.db import connection

from .models import SendingMinute

COUNTERS = ("internal", "external", "total", "bad")
_TABLE = SendingMinute._meta.db_table
_STAGE = "mailflow_sending_minute_stage"


def minute_of(moment: datetime) -> int:
    """The minute of ``moment`` since the Unix epoch (floor, also before 1970)."""
    return int(moment.timestamp() // 60)


def count_sent(tenant_id: int, sent: Iterable[tuple[int, datetime, int, int, int, int]]) -> None:
    """Add messages, given as (sender id, time, internal, external, total recipients, bad 0/1), to their
    minutes; ``bad`` may be -1 to take a verdict back. One upsert for the whole batch."""
    sums: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for sender_id, at, internal, external, total, bad in sent:
        counters = sums[(sender_id, minute_of(at))]
        counters[0] += internal
        counters[1] += external
        counters[2] += total
        counters[3] += bad
    add_minutes(tenant_id, sums)


def add_minutes(tenant_id: int, sums: dict[tuple[int, int], list[int]]) -> None:
    """Add ``sums``, (sender id, minute) -> [internal, external, total, bad], to the minute rows: one upsert,
    rows in key order (so concurrent batches lock shared minutes in the same order)."""
    if not sums:
        return
    columns = ("tenant_id", "sender_id", "minute", "time", *COUNTERS)
    update = ", ".join(f"{c} = {_TABLE}.{c} + excluded.{c}" for c in COUNTERS)
    conflict = f"ON CONFLICT (sender_id, minute) DO UPDATE SET {update}"
    if connection.vendor != "postgresql":
        rows: list[tuple[int | datetime, ...]] = [
            (tenant_id, sender_id, minute, datetime.fromtimestamp(minute * 60, UTC), *counters)
            for (sender_id, minute), counters in sorted(sums.items())
        ]
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {_TABLE} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "  # noqa: S608
                f"{conflict}",
                rows,
            )
        return
    # PostgreSQL: COPY into a staging table, then one set-based upsert (array parameters cost more to build).
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (sender_id bigint, minute bigint, internal int, "
            "external int, total int, bad int) ON COMMIT DELETE ROWS"
        )
        cursor.execute(f"TRUNCATE {_STAGE}")
        with cursor.copy(f"COPY {_STAGE} FROM STDIN") as copy:
            write = copy.write_row
            for (sender_id, minute), counters in sums.items():
                write((sender_id, minute, *counters))
        cursor.execute(
            f"INSERT INTO {_TABLE} ({', '.join(columns)}) "  # noqa: S608 - our tables, values are parameters
            f"SELECT %s, sender_id, minute, to_timestamp(minute * 60), {', '.join(COUNTERS)} FROM {_STAGE} "
            f"ORDER BY sender_id, minute {conflict}",
            (tenant_id,),
        )


def busiest_windows(
    tenant_id: int,
    sender_ids: Sequence[int],
    windows: dict[str, tuple[str, int]],
    ends_from: datetime,
    ends_to: datetime,
) -> dict[int, dict[str, int]]:
    """For each sender with minute rows, the largest sum of each named window, ``name: (counter, minutes)``,
    over the rolling windows that end in a minute from ``ends_from``'s to ``ends_to``'s (both included),
    each window covering its end minute and the ``minutes`` before it. Senders without rows are absent.
    One query (a window function per name)."""
    if not sender_ids or not windows:
        return {}
    lo, hi = minute_of(ends_from), minute_of(ends_to)
    widest = max(minutes for _, minutes in windows.values())
    names = list(windows)
    sums = ", ".join(
        f"SUM({windows[n][0]}) OVER (PARTITION BY sender_id ORDER BY minute "
        f"RANGE BETWEEN {int(windows[n][1])} PRECEDING AND CURRENT ROW) AS w{i}"
        for i, n in enumerate(names)
    )
    maxima = ", ".join(f"MAX(w{i})" for i in range(len(names)))
    # One array parameter on PostgreSQL: a thousand placeholders cost more to parse than the query to run.
    params: list[Any]
    if connection.vendor == "postgresql":
        senders, params = "= ANY(%s::bigint[])", [list(sender_ids)]  # one parameter: the list itself
    else:
        senders, params = f"IN ({', '.join(['%s'] * len(sender_ids))})", list(sender_ids)
    sql = (
        f"SELECT sender_id, {maxima} FROM (SELECT sender_id, minute, {sums} FROM {_TABLE} "  # noqa: S608 - ours
        f"WHERE tenant_id = %s AND sender_id {senders} AND minute BETWEEN %s AND %s) AS m "
        "WHERE minute >= %s GROUP BY sender_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [tenant_id, *params, lo - widest, hi, lo])
        return {
            row[0]: {name: int(value or 0) for name, value in zip(names, row[1:], strict=True)}
            for row in cursor.fetchall()
        }
