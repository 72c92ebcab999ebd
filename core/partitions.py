"""Time-partitioned telemetry on PostgreSQL (issue 17): the DDL and catalog side.

A partitioned table is ``PARTITION BY RANGE (<time column>)`` with one partition per aligned span of
``days`` days (``<table>_pYYYYMMDD``, named by its first day; weeks start on Monday) and a DEFAULT partition
(``<table>_default``) that takes every row no range partition covers: events older or newer than the
partitions made so far (so ingest never fails because beat has not run), and the rows retention keeps when
it drops their partition (alert evidence, open investigations: the *keep* rows, still read through the
table). Django sees the same model: the primary key becomes ``(id, time)`` in the database and every unique
key holds the time column, as PostgreSQL requires.

:func:`partition_table` converts a plain table (rows moved, names, indexes and constraints kept) and is
idempotent; :func:`unpartition_table` is its reverse. :func:`create_partitions` makes the missing range
partitions of a span, moving the rows the default partition holds for a new range into it.
:func:`drop_partitions` drops whole partitions after moving their keep rows to the default partition.
SQLite (the embedded mode) keeps plain tables: every function here is for PostgreSQL only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db import connection, migrations, models, transaction
from django.db.backends.utils import CursorWrapper

# Weeks start on Monday: 1970-01-05 was one. Daily partitions align on UTC midnight either way.
_EPOCH_MONDAY = date(1970, 1, 5)
_NAME = re.compile(r"_p(\d{8})$")
# Partition maintenance never waits long behind ingest or the console: it gives up and runs again later.
LOCK_TIMEOUT = "10s"


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def align(day: date, days: int) -> date:
    """The first day of the ``days``-day span that holds ``day``."""
    return day - timedelta(days=(day - _EPOCH_MONDAY).days % days)


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def partition_name(table: str, first_day: date) -> str:
    return f"{table}_p{first_day:%Y%m%d}"


def default_name(table: str) -> str:
    return f"{table}_default"


def _bounds(day: date, days: int) -> str:
    """A range partition's bounds clause: [midnight of ``day``, ``days`` later)."""
    return f"FROM ('{midnight(day).isoformat()}') TO ('{midnight(day + timedelta(days=days)).isoformat()}')"


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def is_partitioned(table: str) -> bool:
    """Whether ``table`` is a partitioned table (PostgreSQL; always false elsewhere)."""
    if not is_postgres():
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def range_partitions(table: str) -> dict[date, str]:
    """The range partitions of ``table`` made here, by their first day (the default partition aside)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s)",
            [table],
        )
        names = [name for (name,) in cursor.fetchall()]
    found = {}
    for name in names:
        match = _NAME.search(name)
        if match:
            digits = match[1]
            day = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
            if name == partition_name(table, day):
                found[day] = name
    return found


def spans(first: date, last: date, days: int) -> list[date]:
    """The first days of the aligned spans from the one holding ``first`` to the one holding ``last``."""
    day, out = align(first, days), []
    while day <= last:
        out.append(day)
        day += timedelta(days=days)
    return out


def _lock(cursor: CursorWrapper, table: str) -> None:
    """Take the table for the rest of the transaction, before anything else: creating or dropping a
    partition needs this lock in the end, and asking for it first (rather than upgrading a weaker one) is
    what keeps a concurrent ingest from deadlocking with it. Waits at most ``LOCK_TIMEOUT``."""
    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    cursor.execute(f"LOCK TABLE ONLY {_q(table)} IN ACCESS EXCLUSIVE MODE")


def create_partitions(table: str, column: str, days: int, first: date, last: date) -> list[str]:
    """Create the missing range partitions of ``table`` from the span holding ``first`` to the one holding
    ``last``; returns the names created. Idempotent. Each is made in its own short transaction holding the
    table: rows the default partition holds for its range (ingested before it existed) are moved into it,
    so none is lost and PostgreSQL's check that the default holds nothing of the new range passes."""
    existing = range_partitions(table)
    created = []
    for day in spans(first, last, days):
        if day not in existing:
            _create_partition(table, column, day, days)
            created.append(partition_name(table, day))
    return created


def _create_partition(table: str, column: str, day: date, days: int) -> None:
    lo, hi = midnight(day), midnight(day + timedelta(days=days))
    name, default = partition_name(table, day), default_name(table)
    in_range = f"{_q(column)} >= %s AND {_q(column)} < %s"
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor, table)
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {_q(default)} WHERE {in_range})", [lo, hi])  # noqa: S608
        stray = cursor.fetchone()[0]
        if stray:
            cursor.execute(
                f"CREATE TEMPORARY TABLE partition_move ON COMMIT DROP AS "  # noqa: S608 - our names
                f"SELECT * FROM {_q(default)} WHERE {in_range}",
                [lo, hi],
            )
            cursor.execute(f"DELETE FROM {_q(default)} WHERE {in_range}", [lo, hi])  # noqa: S608
        cursor.execute(f"CREATE TABLE {_q(name)} PARTITION OF {_q(table)} FOR VALUES {_bounds(day, days)}")
        if stray:
            cursor.execute(f"INSERT INTO {_q(table)} SELECT * FROM partition_move")  # noqa: S608
            cursor.execute("DROP TABLE partition_move")


def drop_partitions(
    model: type[models.Model],
    column: str,
    days: int,
    first_days: Sequence[date],
    keep: Callable[[datetime, datetime], list[models.Q]],
    *,
    dry_run: bool,
) -> Counter[int]:
    """Drop the range partitions of ``model``'s table that start on ``first_days`` (``days`` wide), after
    moving the rows matching any of ``keep(start, end)`` into the default partition (still read through
    the table); returns the rows that went per tenant id (what would go, with ``dry_run``, which changes
    nothing).

    One transaction holding the table (reads and writes wait): the partitions are counted, their keep rows
    copied aside, then they are dropped and the keep rows inserted back through the table (they land in the
    default partition, as no range partition covers their time any more). It lasts about as long as a scan
    of the partitions."""
    table = model._meta.db_table
    keep_table = f"{table}_keep"
    time_field = next(f for f in model._meta.concrete_fields if f.column == column).name
    names = [partition_name(table, day) for day in first_days]
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor, table)
        union = " UNION ALL ".join(
            f"SELECT {i} AS part, tenant_id FROM {_q(name)}"  # noqa: S608 - our names
            for i, name in enumerate(names)
        )
        cursor.execute(f"SELECT part, tenant_id, count(*) FROM ({union}) rows GROUP BY 1, 2")  # noqa: S608
        went: Counter[int] = Counter()
        filled = set()
        for part, tenant, rows in cursor.fetchall():
            went[tenant] += rows
            filled.add(part)
        moved = False
        for part in sorted(filled):
            start, end = midnight(first_days[part]), midnight(first_days[part] + timedelta(days=days))
            conditions = keep(start, end)
            if not conditions:
                continue
            rows = model._default_manager.filter(**{f"{time_field}__gte": start, f"{time_field}__lt": end})
            # One semi-join per condition (an OR of EXISTS would be a sub-plan run for every row).
            kept = [rows.filter(condition).order_by().values("pk") for condition in conditions]
            sql, params = kept[0].union(*kept[1:], all=True).order_by().query.sql_with_params()
            if not moved:
                cursor.execute(
                    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_q(keep_table)} (LIKE {_q(table)}) "
                    "ON COMMIT DELETE ROWS"
                )
                moved = True
            cursor.execute(
                f"INSERT INTO {_q(keep_table)} SELECT * FROM {_q(names[part])} "  # noqa: S608 - our names
                f"WHERE id IN ({sql}) RETURNING tenant_id",
                params,
            )
            went.subtract(tenant for (tenant,) in cursor.fetchall())
        if dry_run:
            transaction.set_rollback(True)
        else:
            cursor.execute(f"DROP TABLE {', '.join(map(_q, names))}")
            if moved:
                cursor.execute(f"INSERT INTO {_q(table)} SELECT * FROM {_q(keep_table)}")  # noqa: S608
    return +went


# Converting a plain table and back (migrations).


def _indexes_and_constraints(
    cursor: CursorWrapper, table: str
) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The CREATE INDEX statements of ``table``'s indexes that back no constraint, and its primary key,
    unique and foreign-key constraints as (name, type, definition)."""
    cursor.execute(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = to_regclass(%s) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) ORDER BY 1",
        [table],
    )
    indexes = [definition for (definition,) in cursor.fetchall()]
    cursor.execute(
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = to_regclass(%s) AND contype IN ('p', 'u', 'f') ORDER BY contype DESC, conname",
        [table],
    )
    return indexes, list(cursor.fetchall())


def _rebuild(table: str, *, partition_by: str | None, partitions: Iterable[tuple[date, int]]) -> None:
    """Rewrite ``table`` as a partitioned table (``partition_by``: its time column) or back to a plain one
    (None), keeping its rows, identity sequence, indexes, constraints and their names. The primary key
    gains (or loses) the time column; every unique key must already hold it. Rows are copied before the
    indexes are built, into the partitions that cover them (the default partition takes the rest)."""
    new = f"{table}__rebuild"
    with transaction.atomic(), connection.cursor() as cursor:
        indexes, constraints = _indexes_and_constraints(cursor, table)
        for name, kind, definition in constraints:
            if kind == "u" and partition_by and not re.search(rf"\b{partition_by}\b", definition):
                raise ValueError(f"{table}: unique key {name} must hold {partition_by} to be partitioned")
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        (sequence,) = cursor.fetchone()
        partitioning = f" PARTITION BY RANGE ({_q(partition_by)})" if partition_by else ""
        cursor.execute(
            f"CREATE TABLE {_q(new)} (LIKE {_q(table)} INCLUDING DEFAULTS INCLUDING IDENTITY "
            f"INCLUDING CONSTRAINTS INCLUDING STORAGE){partitioning}"
        )
        if partition_by:
            cursor.execute(f"CREATE TABLE {_q(default_name(table))} PARTITION OF {_q(new)} DEFAULT")
            for day, days in partitions:
                partition = _q(partition_name(table, day))
                cursor.execute(
                    f"CREATE TABLE {partition} PARTITION OF {_q(new)} FOR VALUES {_bounds(day, days)}"
                )
        cursor.execute(f"INSERT INTO {_q(new)} SELECT * FROM {_q(table)}")  # noqa: S608 - our names
        cursor.execute(f"SELECT last_value, is_called FROM {sequence}")  # noqa: S608 - from the catalog
        last_value, is_called = cursor.fetchone()
        cursor.execute(f"DROP TABLE {_q(table)}")
        cursor.execute(f"ALTER TABLE {_q(new)} RENAME TO {_q(table)}")
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        (new_sequence,) = cursor.fetchone()
        cursor.execute(f"ALTER SEQUENCE {new_sequence} RENAME TO {_q(sequence.split('.')[-1])}")
        cursor.execute("SELECT setval(%s, %s, %s)", [sequence, last_value, is_called])
        for name, kind, definition in constraints:
            if kind == "p":
                definition = f"PRIMARY KEY (id, {_q(partition_by)})" if partition_by else "PRIMARY KEY (id)"
            cursor.execute(f"ALTER TABLE {_q(table)} ADD CONSTRAINT {_q(name)} {definition}")
        for definition in indexes:
            cursor.execute(definition)
        cursor.execute(f"ANALYZE {_q(table)}")


def partition_table(table: str, column: str, days: int, *, back_days: int, ahead_days: int) -> None:
    """Convert the plain ``table`` to one partitioned by ``column`` in ``days``-day spans (PostgreSQL; a
    no-op elsewhere or when it already is). Range partitions cover the rows it holds from ``back_days``
    ago, and ``ahead_days`` to come; older rows go to the default partition (retention deletes them)."""
    if not is_postgres() or is_partitioned(table):
        return
    today = datetime.now(tz=UTC).date()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min({_q(column)}) FROM {_q(table)}")  # noqa: S608 - our names
        (oldest,) = cursor.fetchone()
    first = max(oldest.date(), today - timedelta(days=back_days)) if oldest else today
    last = today + timedelta(days=ahead_days)
    _rebuild(table, partition_by=column, partitions=[(day, days) for day in spans(first, last, days)])


def unpartition_table(table: str) -> None:
    """The reverse of :func:`partition_table`: a plain table with the same rows, indexes and constraints."""
    if is_partitioned(table):
        _rebuild(table, partition_by=None, partitions=())


def partitioning_operation(tables: Sequence[tuple[str, str, int, str]]) -> migrations.RunPython:
    """A migration operation that partitions each (table, time column, days, retention table name) with
    :func:`partition_table` (the window's partitions from the retention setting, and the days ahead), and
    reverses with :func:`unpartition_table`."""

    def forwards(apps: object, schema_editor: object) -> None:
        for table, column, days, retention in tables:
            back = settings.RETENTION_DAYS_PER_TABLE.get(retention, settings.RETENTION_DAYS)
            ahead = settings.TELEMETRY_PARTITIONS_AHEAD_DAYS
            partition_table(table, column, days, back_days=back, ahead_days=ahead)

    def backwards(apps: object, schema_editor: object) -> None:
        for table, *_ in tables:
            unpartition_table(table)

    return migrations.RunPython(forwards, backwards, elidable=False)
