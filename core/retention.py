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
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from .models import Tenant
from .services import record_audit

logger = logging.getLogger(__name__)

LEDGER = "ingest_ledger"


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

    @property
    def model_class(self) -> type[models.Model]:
        return apps.get_model(self.model)


Guard = Callable[[RetainedTable, models.QuerySet], models.QuerySet]

_tables: dict[str, RetainedTable] = {}
_guards: list[Guard] = []


def register_table(table: RetainedTable) -> None:
    """Declare a table for the retention purge (idempotent: ``ready`` may run more than once in tests)."""
    _tables[table.name] = table


def register_guard(guard: Guard) -> None:
    """Add a filter that removes rows to keep from a table's expired rows. It is applied to every table, to
    one batch of candidates (at most the purge's ``batch_size`` rows) at a time."""
    if guard not in _guards:
        _guards.append(guard)


def retained_tables() -> list[RetainedTable]:
    """The registered tables in purge order: by name, the ledger last (it keeps the ids of what is left)."""
    return sorted(_tables.values(), key=lambda table: (table.name == LEDGER, table.name))


def retention_days(name: str) -> int:
    """The table's window in days (0: forever)."""
    return settings.RETENTION_DAYS_PER_TABLE.get(name, settings.RETENTION_DAYS)


def expired_rows(table: RetainedTable, tenant: Tenant, now: datetime) -> models.QuerySet | None:
    """The tenant's rows of ``table`` past their window, before the guards (None: kept forever)."""
    days = retention_days(table.name)
    if days <= 0:
        return None
    cutoff = now - timedelta(days=days)
    return table.model_class._default_manager.filter(
        **{table.tenant_field: tenant, f"{table.time_field}__lt": cutoff}
    )


def without_kept(table: RetainedTable, rows: models.QuerySet) -> models.QuerySet:
    """``rows`` less those a guard keeps."""
    for guard in _guards:
        rows = guard(table, rows)
    return rows


def purge_expired(
    *, now: datetime | None = None, batch_size: int = 5000, dry_run: bool = False
) -> dict[str, dict[str, int]]:
    """Delete every expired row; returns ``{tenant slug: {table: rows}}`` (what would go, with ``dry_run``).

    Safe to run concurrently with ingest and with itself: each batch is its own transaction and deletes by
    primary key what it just read (a row another purge took first is simply not counted twice)."""
    now = now or timezone.now()
    purged: dict[str, dict[str, int]] = {}
    for tenant in Tenant.objects.order_by("pk"):
        counts = {}
        for table in retained_tables():
            rows = expired_rows(table, tenant, now)
            if rows is not None:
                counts[table.name] = _purge_in_batches(table, rows, batch_size, dry_run=dry_run)
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
            doomed = without_kept(table, model._default_manager.filter(pk__in=[pk for pk, _ in batch]))
            if dry_run:
                total += doomed.count()
            else:
                _, by_model = doomed.delete()
                total += by_model.get(model._meta.label, 0)
        after = batch[-1]
