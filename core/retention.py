"""Retention of telemetry (DESIGN section 11): a window per table, 30 days by default, purged by beat.

Apps register the tables they own (:func:`register_table`, from their ``AppConfig.ready``) and, where a row
must outlive its window, a guard (:func:`register_guard`: the alerts app keeps every event that is evidence
of an alert). :func:`purge_expired` deletes, tenant by tenant and table by table, the rows whose time is
older than the table's window, in short transactions of at most ``batch_size`` rows, so ingest and the
console never wait behind one long delete. Each tenant's purge is recorded in the audit log.

Windows come from ``settings.RETENTION_DAYS_PER_TABLE`` (``RETENTION_DAYS_<TABLE>``, else
``RETENTION_DAYS``; 0 keeps a table's rows forever). The ingest ledger (the ids that make ingest idempotent)
is purged last, and its guard keeps the id of every event still stored: a telemetry row whose ledger row was
gone would make a re-sent event collide with it.

On PostgreSQL the tables declared with ``partition_days`` are partitioned by time (:mod:`core.partitions`):
the purge first drops every partition wholly past the window, after moving the rows a guard keeps into the
default partition, then deletes the expired rows left in the default partition by the batched path. Such a
table's window ends at a partition boundary (a row goes with its whole day, or week for the ledger), so an
hourly purge never nibbles at a partition that will be dropped whole later. :func:`ensure_partitions`
(beat, hourly) creates the partitions of the window and of the days ahead.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.apps import apps
from django.conf import settings
from django.db import OperationalError, models, transaction
from django.utils import timezone

from . import partitions
from .models import Tenant
from .services import record_audit

logger = logging.getLogger(__name__)

LEDGER = "ingest_ledger"
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's lock_timeout
# Partitions dropped in one transaction: a backlog goes in few commits, and the locks stay few.
PARTITIONS_PER_TRANSACTION = 16


@dataclass(frozen=True)
class RetainedTable:
    """A table purged by age: ``time_field`` older than the window goes. ``evidence_kinds`` are the alert
    evidence kinds its rows can be (by ``event_id``), which a guard may keep past the window."""

    name: str
    model: str  # "app_label.ModelName"
    time_field: str
    tenant_field: str = "tenant"
    mailbox_field: str = ""  # the mailbox a row belongs to, for guards that keep a mailbox's rows
    evidence_kinds: tuple[str, ...] = ()
    partition_days: int = 0  # on PostgreSQL, partitioned by ``time_field`` in spans of this many days

    @property
    def model_class(self) -> type[models.Model]:
        return apps.get_model(self.model)

    @property
    def db_table(self) -> str:
        return self.model_class._meta.db_table

    @property
    def time_column(self) -> str:
        field = self.model_class._meta.get_field(self.time_field)
        if not isinstance(field, models.Field) or not field.column:
            raise TypeError(f"{self.model}.{self.time_field} is not a column")
        return field.column

    def is_partitioned(self) -> bool:
        """Whether the table is partitioned in this database (never on SQLite)."""
        return bool(self.partition_days) and partitions.is_partitioned(self.db_table)


Span = tuple[datetime, datetime]
Guard = Callable[[RetainedTable, Span], list[models.Q]]
"""A keep rule: the conditions under which a row of ``table`` whose time is in ``span`` ([start, end))
outlives its window (any of them keeps it; none when the rule does not concern the table). Each is applied
on its own (an anti-join when purging, a semi-join when keeping), so make each one ``Exists`` or a plain
filter; they may use the span to bound their sub-queries (partition pruning)."""

_tables: dict[str, RetainedTable] = {}
_guards: list[Guard] = []


def register_table(table: RetainedTable) -> None:
    """Declare a table for the retention purge (idempotent: ``ready`` may run more than once in tests)."""
    _tables[table.name] = table


def register_guard(guard: Guard) -> None:
    """Add a keep rule. It is asked about every table, for one batch of candidates (at most the purge's
    ``batch_size`` rows) or one whole partition at a time."""
    if guard not in _guards:
        _guards.append(guard)


def retained_tables() -> list[RetainedTable]:
    """The registered tables in purge order: by name, the ledger last (it keeps the ids of what is left)."""
    return sorted(_tables.values(), key=lambda table: (table.name == LEDGER, table.name))


def retention_days(name: str) -> int:
    """The table's window in days (0: forever)."""
    return settings.RETENTION_DAYS_PER_TABLE.get(name, settings.RETENTION_DAYS)


def retained_table(name: str) -> RetainedTable:
    return _tables[name]


def cutoff(table: RetainedTable, now: datetime) -> datetime | None:
    """Rows of ``table`` older than this are past their window (None: kept forever). For a partitioned
    table, the start of the partition span that holds ``now - window``."""
    days = retention_days(table.name)
    if days <= 0:
        return None
    exact = now - timedelta(days=days)
    if table.is_partitioned():
        return partitions.midnight(partitions.align(exact.date(), table.partition_days))
    return exact


def expired_rows(table: RetainedTable, tenant: Tenant, now: datetime) -> models.QuerySet | None:
    """The tenant's rows of ``table`` past their window, before the guards (None: kept forever)."""
    limit = cutoff(table, now)
    if limit is None:
        return None
    return table.model_class._default_manager.filter(
        **{table.tenant_field: tenant, f"{table.time_field}__lt": limit}
    )


def keep_conditions(table: RetainedTable, span: Span) -> list[models.Q]:
    """What the guards keep of the rows of ``table`` in ``span``: a row matching any condition is kept."""
    return [condition for guard in _guards for condition in guard(table, span)]


def _keep_in(table: RetainedTable, start: datetime, end: datetime) -> list[models.Q]:
    return keep_conditions(table, (start, end))


def without_kept(table: RetainedTable, rows: models.QuerySet, span: Span) -> models.QuerySet:
    """``rows`` (their times in ``span``) less those a guard keeps."""
    for condition in keep_conditions(table, span):
        rows = rows.exclude(condition)
    return rows


def ensure_partitions(now: datetime | None = None) -> list[str]:
    """Create the missing partitions of every partitioned table: from the one holding the start of its
    window (today when kept forever) to ``TELEMETRY_PARTITIONS_AHEAD_DAYS`` ahead. Returns their names;
    idempotent. Rows ingested before their partition existed wait in the default partition and are moved
    into it as it is created."""
    now = now or timezone.now()
    created = []
    for table in retained_tables():
        if not table.is_partitioned():
            continue
        start = cutoff(table, now) or now
        last = now + timedelta(days=settings.TELEMETRY_PARTITIONS_AHEAD_DAYS)
        created += partitions.create_partitions(
            table.db_table, table.time_column, table.partition_days, start.date(), last.date()
        )
    if created:
        logger.info("Created %d partitions, %s … %s", len(created), created[0], created[-1])
    return created


@dataclass
class _Dropped:
    """What dropping a table's expired partitions took (would take): rows per tenant id, and the spans."""

    rows: Counter[int]
    spans: list[Span]

    def exclude_from(self, rows: models.QuerySet, time_field: str) -> models.QuerySet:
        """``rows`` outside the dropped spans (a dry run must not count them twice)."""
        for start, end in self.spans:
            rows = rows.exclude(**{f"{time_field}__gte": start, f"{time_field}__lt": end})
        return rows


def _drop_expired_partitions(now: datetime, *, dry_run: bool) -> dict[str, _Dropped]:
    """Drop the partitions wholly past their table's window, keeping what the guards keep; the rows that
    went (would go), per table and tenant id. The ledger goes last, once the events it may keep are gone.
    A partition whose lock is not granted in time is left for the next run."""
    dropped: dict[str, _Dropped] = {}
    for table in retained_tables():
        limit = cutoff(table, now)
        if limit is None or not table.is_partitioned():
            continue
        width = timedelta(days=table.partition_days)
        expired = [
            day
            for day in sorted(partitions.range_partitions(table.db_table))
            if partitions.midnight(day) + width <= limit
        ]
        done = dropped[table.name] = _Dropped(Counter(), [])
        for chunk in range(0, len(expired), PARTITIONS_PER_TRANSACTION):
            days = expired[chunk : chunk + PARTITIONS_PER_TRANSACTION]
            try:
                done.rows.update(
                    partitions.drop_partitions(
                        table.model_class,
                        table.time_column,
                        table.partition_days,
                        days,
                        partial(_keep_in, table),
                        dry_run=dry_run,
                    )
                )
            except OperationalError as exc:
                if getattr(exc.__cause__, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                    raise
                logger.warning("Partitions of %s from %s busy; left for the next purge", table.name, days[0])
            else:
                done.spans += [(partitions.midnight(d), partitions.midnight(d) + width) for d in days]
    return dropped


def purge_expired(
    *, now: datetime | None = None, batch_size: int = 5000, dry_run: bool = False
) -> dict[str, dict[str, int]]:
    """Delete every expired row; returns ``{tenant slug: {table: rows}}`` (what would go, with ``dry_run``).

    Safe to run concurrently with ingest and with itself: each batch is its own transaction and deletes by
    primary key what it just read (a row another purge took first is simply not counted twice)."""
    now = now or timezone.now()
    dropped = _drop_expired_partitions(now, dry_run=dry_run)
    purged: dict[str, dict[str, int]] = {}
    for tenant in Tenant.objects.order_by("pk"):
        counts = {}
        for table in retained_tables():
            rows = expired_rows(table, tenant, now)
            if rows is None:
                continue
            partitioned = dropped.get(table.name)
            if partitioned is None:
                counts[table.name] = _purge_in_batches(table, rows, batch_size, dry_run=dry_run)
                continue
            if dry_run:
                rows = partitioned.exclude_from(rows, table.time_field)
            deleted = _purge_in_batches(table, rows, batch_size, dry_run=dry_run)
            counts[table.name] = partitioned.rows[tenant.pk] + deleted
        purged[tenant.slug] = counts
        if not dry_run and any(counts.values()):
            record_audit(
                "core.retention.purged",
                target=tenant,
                after={"rows": counts, "days": {name: retention_days(name) for name in counts}},
            )
            logger.info("Retention purge of tenant %s: %s", tenant.slug, counts)
    return purged


def _purge_in_batches(table: RetainedTable, rows: models.QuerySet, batch_size: int, *, dry_run: bool) -> int:
    """Delete (or with ``dry_run`` count) the expired ``rows`` no guard keeps, reading ``batch_size``
    candidates at a time in (time, pk) order. Each batch starts after the last candidate of the previous one,
    so it never re-reads rows a guard kept nor the index entries of rows just deleted (dead until vacuum); the
    guards see one batch of primary keys at a time."""
    model = table.model_class
    time_field = table.time_field
    rows = rows.order_by(time_field, "pk")
    total = 0
    after: tuple | None = None
    while True:
        page = rows
        if after is not None:
            pk, at = after
            page = rows.filter(
                models.Q(**{f"{time_field}__gt": at}) | models.Q(**{time_field: at, "pk__gt": pk})
            )
        with transaction.atomic():
            batch = list(page.values_list("pk", time_field)[:batch_size])
            if not batch:
                return total
            span = (batch[0][1], batch[-1][1] + timedelta(microseconds=1))
            # The time bounds let PostgreSQL read only the partitions the batch is in.
            candidates = model._default_manager.filter(
                **{
                    "pk__in": [pk for pk, _ in batch],
                    f"{time_field}__gte": span[0],
                    f"{time_field}__lt": span[1],
                }
            )
            doomed = without_kept(table, candidates, span)
            if dry_run:
                total += doomed.count()
            else:
                _, by_model = doomed.delete()
                total += by_model.get(model._meta.label, 0)
        after = batch[-1]
