"""Read helpers that let pages and exports of lower apps' objects name their incident (and investigation)
without a query per row: correlated subqueries annotated onto an alert, restriction, investigation or
remediation action queryset. The lower apps never import this; ``console/`` does."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

from investigations.models import Investigation

from .models import IncidentAlert, IncidentInvestigation, IncidentRestriction


def _newest_investigation_of_incident(incident_ref: OuterRef) -> Subquery:
    return Subquery(
        IncidentInvestigation.objects.filter(incident_id=incident_ref)
        .order_by("-investigation_id")
        .values("investigation_id")[:1]
    )


def alert_links(queryset: QuerySet) -> QuerySet:
    """Alerts with ``incident_id`` and ``investigation_id`` (the newest investigation the alert is in)."""
    through = Investigation.alerts.through
    return queryset.annotate(
        incident_id=Subquery(IncidentAlert.objects.filter(alert_id=OuterRef("pk")).values("incident_id")[:1]),
        investigation_id=Subquery(
            through.objects.filter(alert_id=OuterRef("pk"))
            .order_by("-investigation_id")
            .values("investigation_id")[:1]
        ),
    )


def restriction_links(queryset: QuerySet) -> QuerySet:
    """Restrictions with ``incident_id`` and ``investigation_id`` (the incident's newest investigation)."""
    incident = IncidentRestriction.objects.filter(restriction_id=OuterRef("pk")).values("incident_id")[:1]
    return queryset.annotate(incident_id=Subquery(incident)).annotate(
        investigation_id=_newest_investigation_of_incident(OuterRef("incident_id"))
    )


def investigation_links(queryset: QuerySet) -> QuerySet:
    """Investigations with ``incident_id``."""
    return queryset.annotate(
        incident_id=Subquery(
            IncidentInvestigation.objects.filter(investigation_id=OuterRef("pk")).values("incident_id")[:1]
        )
    )


def action_links(queryset: QuerySet) -> QuerySet:
    """Remediation actions with ``incident_id`` (their investigation's incident)."""
    return queryset.annotate(
        incident_id=Subquery(
            IncidentInvestigation.objects.filter(investigation_id=OuterRef("investigation_id")).values(
                "incident_id"
            )[:1]
        )
    )
