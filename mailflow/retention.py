"""The ingest ledger under the retention purge (:mod:`core.retention`)."""

from __future__ import annotations

from django.db import models

from core.retention import LEDGER, RetainedTable
from mailboxes.models import DirectoryChange, SignIn

from .models import MessageEvent


def keep_ledger_of_stored_events(table: RetainedTable, rows: models.QuerySet) -> models.QuerySet:
    """Keep the ledger row of every event still stored (kept by its own, longer window, as an alert's
    evidence, or for an open investigation): ingest recognises a re-sent event by its ledger row, and one
    without it would collide with the stored row."""
    if table.name != LEDGER:
        return rows
    for model in (MessageEvent, SignIn, DirectoryChange):
        stored = model.objects.filter(tenant=models.OuterRef("tenant"), event_id=models.OuterRef("event_id"))
        rows = rows.exclude(models.Exists(stored))
    return rows
