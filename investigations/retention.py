"""What investigations keep past the telemetry retention window (:mod:`core.retention`)."""

from __future__ import annotations

from django.db import models

from core.retention import RetainedTable, Span

from .models import Investigation


def keep_open_investigations_telemetry(table: RetainedTable, span: Span) -> list[models.Q]:
    """Keep every row of a mailbox while an investigation of it is open (queued, running, pending action,
    partially remediated): its actions and a re-run read that telemetry."""
    if not table.mailbox_field:
        return []
    investigated = Investigation.objects.open().filter(mailbox=models.OuterRef(table.mailbox_field))
    return [models.Q(models.Exists(investigated))]
