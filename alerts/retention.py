"""What the alerts app keeps past the telemetry retention window (:mod:`core.retention`)."""

from __future__ import annotations

from django.db import models

from core.retention import RetainedTable, Span

from .models import AlertEvidence


def keep_alert_evidence(table: RetainedTable, span: Span) -> list[models.Q]:
    """Keep the events that are evidence of an alert, whatever its age or state: an analyst opening an old
    alert still sees the messages, sign-ins and changes it was raised on."""
    if not table.evidence_kinds:
        return []
    evidence = AlertEvidence.objects.filter(
        kind__in=table.evidence_kinds,
        alert__tenant=models.OuterRef(table.tenant_field),
        event_id=models.OuterRef("event_id"),
    )
    return [models.Q(models.Exists(evidence))]
