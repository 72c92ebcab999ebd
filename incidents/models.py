"""Incidents (DESIGN section 12): one user's compromise, grouping that user's alerts, restrictions and
investigations (and through them the remediation actions), with the analyst's status, assignee and
classification.

The lower apps store nothing that points here: the link tables live on this side, and an alert, restriction or
investigation joins an incident through the ``incidents.correlate_*`` tasks they enqueue by name. Each
object belongs to at most one incident (a unique link), and a mailbox has at most one incident that is not
resolved (a partial unique constraint), so concurrent correlations cannot open two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from alerts.models import Alert, Severity
from core.models import Tenant

if TYPE_CHECKING:
    from mailboxes.models import Mailbox


class IncidentQuerySet(models.QuerySet):
    def open(self) -> IncidentQuerySet:
        """Active or In progress: the incident a new alert of the user joins."""
        return self.exclude(status=Incident.Status.RESOLVED)

    def active(self) -> IncidentQuerySet:
        return self.filter(status=Incident.Status.ACTIVE)

    def for_mailbox(self, mailbox: Mailbox) -> IncidentQuerySet:
        return self.filter(mailbox=mailbox)

    def with_related(self) -> IncidentQuerySet:
        return self.select_related("tenant", "mailbox", "assigned_to", "resolved_by")


class Incident(models.Model):
    """One user's compromise, from the first attacker activity to the release.

    ``severity`` is the highest severity of its alerts, and ``first_activity_at`` / ``last_activity_at`` span
    their evidence; both are recomputed whenever an alert joins or folds. Status, assignee, classification and
    determination are the analyst's.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        IN_PROGRESS = "in_progress", "In progress"
        RESOLVED = "resolved", "Resolved"

    Classification = Alert.Classification

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="incidents")
    mailbox = models.ForeignKey("mailboxes.Mailbox", on_delete=models.CASCADE, related_name="incidents")
    title = models.CharField(max_length=400)
    severity = models.CharField(max_length=16, choices=Severity, default=Severity.INFORMATIONAL)
    status = models.CharField(max_length=16, choices=Status, default=Status.ACTIVE, db_index=True)
    classification = models.CharField(max_length=32, choices=Alert.Classification, blank=True)
    determination = models.TextField(blank=True)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    first_activity_at = models.DateTimeField()
    last_activity_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    alerts = models.ManyToManyField(Alert, through="IncidentAlert", related_name="+")
    restrictions = models.ManyToManyField(
        "restricted_users.Restriction", through="IncidentRestriction", related_name="+"
    )
    investigations = models.ManyToManyField(
        "investigations.Investigation", through="IncidentInvestigation", related_name="+"
    )

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-last_activity_at", "-id"]
        permissions = [("triage_incident", "Can triage incidents (status, assignee, resolve)")]
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox"], condition=~Q(status="resolved"), name="one_open_incident_per_mailbox"
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "status", "severity"]),
            models.Index(fields=["mailbox", "status"]),
            models.Index(fields=["-last_activity_at", "-id"], name="incident_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"Incident #{self.pk}: {self.title}"


class IncidentLink(models.Model):
    """Puts one object in an incident: the concrete link has ``incident`` and a one-to-one field to the object
    (so the object belongs to at most one incident)."""

    linked_at = models.DateTimeField(default=timezone.now)
    incident_id: int  # the concrete link's ``incident`` (its related name differs per link)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        linked = next(field for field in self._meta.fields if field.one_to_one)
        return f"incident {self.incident_id} ← {linked.name} {getattr(self, linked.attname)}"


class IncidentAlert(IncidentLink):
    """An alert's incident (an alert belongs to one incident)."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="alert_links")
    alert = models.OneToOneField(Alert, on_delete=models.CASCADE, related_name="incident_link")


class IncidentRestriction(IncidentLink):
    """A restriction's incident (a restriction belongs to one incident)."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="restriction_links")
    restriction = models.OneToOneField(
        "restricted_users.Restriction", on_delete=models.CASCADE, related_name="incident_link"
    )


class IncidentInvestigation(IncidentLink):
    """An investigation's incident (an investigation belongs to one incident)."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="investigation_links")
    investigation = models.OneToOneField(
        "investigations.Investigation", on_delete=models.CASCADE, related_name="incident_link"
    )
