"""What investigations keep past the telemetry retention window (:mod:`core.retention`)."""

from __future__ import annotations

from django.db import models

from core.retention import RetainedTable

from .models import Investigation


def keep_open_investigations_telemetry(table: RetainedTable, rows: models.QuerySet) -> models.QuerySet:
    """Keep every row of a mailbox while an investigation of it is open (queued, running, pending action,
    partially remediated): its actions and a re-run read that telemetry."""
    if not table.mailbox_field:
        return rows
    investigated = Investigation.objects.open().filter(mailbox=models.OuterRef(table.mailbox_field))
    return rows.exclude(models.Exists(investigated))
