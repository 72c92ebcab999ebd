"""The ingest ledger under the retention purge (:mod:`core.retention`)."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils import timezone

from core.retention import LEDGER, RetainedTable, retention_days
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


SENDING_MINUTES = "sending_minutes"


def keep_minutes_of_stored_messages(table: RetainedTable, rows: models.QuerySet) -> models.QuerySet:
    """Keep the sending counters as long as the messages they count (``messages``' window, when it is
    longer than theirs): a counter purged before its messages would let detection under-count them."""
    if table.name != SENDING_MINUTES:
        return rows
    days = retention_days("messages")
    if days <= 0:
        return rows.none()
    return rows.filter(time__lt=timezone.now() - timedelta(days=days))
