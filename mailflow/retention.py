"""The ingest ledger under the retention purge (:mod:`core.retention`)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from core.retention import LEDGER, RetainedTable, Span, cutoff, retained_table
from mailboxes.models import DirectoryChange, SignIn

from .models import MessageEvent


def keep_ledger_of_stored_events(table: RetainedTable, span: Span) -> list[models.Q]:
    """Keep the ledger row of every event still stored (kept by its own, longer window, as an alert's
    evidence, or for an open investigation): ingest recognises a re-sent event by its ledger row, and one
    without it would collide with the stored row.

    An event's telemetry row has the event's time, as its ledger row does, so the look-up is bounded to the
    ledger rows' ``span`` (PostgreSQL reads only the partitions of that span)."""
    if table.name != LEDGER:
        return []
    start, end = span
    return [
        models.Q(
            models.Exists(
                model.objects.filter(
                    tenant=models.OuterRef("tenant"),
                    event_id=models.OuterRef("event_id"),
                    **{
                        time_field: models.OuterRef("time"),
                        f"{time_field}__gte": start,
                        f"{time_field}__lt": end,
                    },
                )
            )
        )
        for model, time_field in ((MessageEvent, "time"), (SignIn, "time"), (DirectoryChange, "at"))
    ]


SENDING_MINUTES = "sending_minutes"


def keep_minutes_of_stored_messages(table: RetainedTable, span: Span) -> list[models.Q]:
    """Keep the sending counters as long as the messages they count (``messages``' window, when it is
    longer than theirs): a counter purged before its messages would let detection under-count them."""
    if table.name != SENDING_MINUTES:
        return []
    messages_cutoff = cutoff(retained_table("messages"), timezone.now())
    if messages_cutoff is None:
        return [models.Q(pk__isnull=False)]  # messages are kept forever: so are their counters
    return [models.Q(time__gte=messages_cutoff)]
