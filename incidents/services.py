"""Writes of the incidents app (DESIGN section 12): correlating alerts, restrictions and investigations into
the user's incident, and the analyst's triage (assign, status, resolve, reopen, and their bulk forms).

Correlation takes the mailbox row lock first, so two alerts of one user correlating at once see each other's
incident instead of opening two (the partial unique constraint "one open incident per mailbox" backs it). A
redelivered task finds its object already linked and only refreshes the incident's roll-ups (severity,
activity span), which changes nothing the second time. Every change writes its audit row and its change-feed
entry in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from alerts import services as alert_services
from alerts.models import SEVERITY_RANK, Alert
from core.services import publish_change, record_audit
from investigations.models import Investigation
from mailboxes.models import Mailbox
from restricted_users.models import Restriction

from .exceptions import IncidentError
from .models import Incident, IncidentAlert, IncidentInvestigation, IncidentRestriction

TRIAGE_PERMISSION = "incidents.triage_incident"
BULK_LIMIT = 500
CORRELATOR = "correlation"


def reopen_window() -> timedelta:
    """How long after its last activity a resolved incident still takes new evidence (and reopens)."""
    return timedelta(hours=settings.INCIDENT_REOPEN_HOURS)


def _change(incident: Incident) -> dict:
    """The change-feed ``data`` of an incident."""
    return {
        "incident_id": incident.pk,
        "title": incident.title,
        "user": incident.mailbox.address,
        "severity": incident.severity,
        "status": incident.status,
        "classification": incident.classification,
        "assigned_to": incident.assigned_to.get_username() if incident.assigned_to else None,
        "first_activity_at": incident.first_activity_at.isoformat(),
        "last_activity_at": incident.last_activity_at.isoformat(),
    }


def _state(incident: Incident) -> dict:
    return {
        "status": incident.status,
        "severity": incident.severity,
        "assigned_to": incident.assigned_to.get_username() if incident.assigned_to else None,
        "classification": incident.classification,
    }


# ------------------------------------------------------------------------------------------------ correlation


def correlate_alert(alert_id: int) -> Incident | None:
    """Put an alert in its user's incident: the open one, else a resolved one whose last activity is within
    the reopen window of the alert's evidence (reopened), else a new one titled after the alert. An alert
    already linked (a redelivery, or a fold) refreshes its incident's severity and activity span; new
    evidence on an open alert of a resolved incident reopens it. None for an unknown alert."""
    with transaction.atomic():
        alert = Alert.objects.select_related("mailbox").filter(pk=alert_id).first()
        if alert is None:
            return None
        mailbox = _lock_mailbox(alert.mailbox_id)
        link = IncidentAlert.objects.select_related("incident").filter(alert=alert).first()
        if link is not None:
            incident = _locked(link.incident)
            came_back = incident.status == Incident.Status.RESOLVED and alert.status != Alert.Status.RESOLVED
            if came_back and _open_incident(mailbox) is None:
                _reopen(incident, actor=None, comment=f"New evidence on alert #{alert.pk}: {alert.title}")
            _refresh(incident)
            return incident
        incident, created = _incident_for(mailbox, alert.first_activity_at, reason=f"alert #{alert.pk}")
        if created or not incident.alert_links.exists():
            incident.title = _title(alert.title, mailbox)
        IncidentAlert.objects.create(incident=incident, alert=alert)
        _refresh(incident, always_save=True)
        if created:
            _announce_created(incident, f"alert #{alert.pk}")
        else:
            _record(
                "incidents.incident.alert_added",
                incident,
                after={"alert": alert.pk, "title": alert.title, "severity": incident.severity},
            )
    return incident


def correlate_restriction(restriction_id: int) -> Incident | None:
    """Put a restriction in its user's incident (the open one, else a resolved one within the window,
    reopened, else a new one). Idempotent; None for an unknown restriction."""
    return _correlate(Restriction, IncidentRestriction, restriction_id, _restriction_joining)


def correlate_investigation(investigation_id: int) -> Incident | None:
    """Put an investigation in its user's incident (the open one, else a resolved one within the window,
    reopened, else a new one). Idempotent; None for an unknown investigation."""
    return _correlate(Investigation, IncidentInvestigation, investigation_id, _investigation_joining)


class _Joining(NamedTuple):
    """How one restriction or investigation joins an incident: its time, what a new incident is titled after,
    and the audit action and record of joining an incident that exists."""

    at: datetime
    what: str
    added: tuple[str, dict[str, Any]]


def _restriction_joining(restriction: Restriction) -> _Joining:
    added = {"restriction": restriction.pk, "source": restriction.source}
    what = f"User restricted from sending email ({restriction.policy_name})"
    return _Joining(restriction.placed_at, what, ("incidents.incident.restriction_added", added))


def _investigation_joining(investigation: Investigation) -> _Joining:
    added = {"investigation": investigation.pk}
    return _Joining(
        investigation.created_at,
        "Compromised user investigation",
        ("incidents.incident.investigation_added", added),
    )


def _correlate[T: (Restriction, Investigation)](
    model: type[T],
    link_model: type[IncidentRestriction] | type[IncidentInvestigation],
    pk: int,
    joining: Callable[[T], _Joining],
) -> Incident | None:
    """Link one restriction or investigation to its user's incident, once (with the mailbox locked): the open
    one, else a resolved one within the window (reopened), else a new one titled after ``joining(row).what``.
    None for an unknown row."""
    with transaction.atomic():
        row = model._default_manager.filter(pk=pk).first()
        if row is None:
            return None
        field = model.__name__.lower()  # the link model's field: "restriction" or "investigation"
        mailbox = _lock_mailbox(row.mailbox_id)
        link = link_model._default_manager.select_related("incident").filter(**{field: row}).first()
        if link is not None:
            return link.incident
        at, what, added = joining(row)
        reason = f"{field} #{row.pk}"
        incident, created = _incident_for(mailbox, at, reason=reason, title=_title(what, mailbox))
        link_model._default_manager.create(incident=incident, **{field: row})
        if created:
            _announce_created(incident, reason)
        else:
            action, after = added
            _record(action, incident, after=after)
    return incident


def _lock_mailbox(mailbox_id: int) -> Mailbox:
    return Mailbox.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=mailbox_id)


def _locked(incident: Incident) -> Incident:
    return Incident.objects.select_for_update(of=("self",)).with_related().get(pk=incident.pk)


def _open_incident(mailbox: Mailbox) -> Incident | None:
    return Incident.objects.open().for_mailbox(mailbox).select_for_update(of=("self",)).with_related().first()


def _title(what: str, mailbox: Mailbox) -> str:
    return f"{what} involving {mailbox.address}"[:400]


def _incident_for(mailbox: Mailbox, at: datetime, *, reason: str, title: str = "") -> tuple[Incident, bool]:
    """With the mailbox locked: the user's open incident, else a resolved one within the reopen window
    (reopened), else a new one. Returns ``(incident, created)``."""
    current = _open_incident(mailbox)
    if current is not None:
        return current, False
    recent = (
        Incident.objects.filter(mailbox=mailbox, status=Incident.Status.RESOLVED)
        .select_for_update(of=("self",))
        .with_related()
        .order_by("-last_activity_at", "-id")
        .first()
    )
    if recent is not None and at - recent.last_activity_at <= reopen_window():
        _reopen(recent, actor=None, comment=f"New evidence within the reopen window: {reason}")
        return recent, False
    incident = Incident.objects.create(
        tenant=mailbox.tenant,
        mailbox=mailbox,
        title=title or _title("Suspicious activity", mailbox),
        first_activity_at=at,
        last_activity_at=at,
    )
    return incident, True


def _announce_created(incident: Incident, reason: str) -> None:
    record_audit(
        "incidents.incident.created",
        target=incident,
        actor_label=CORRELATOR,
        after={**_state(incident), "title": incident.title, "first": reason},
    )
    publish_change("incident.created", target=incident, payload=_change(incident))


def _record(
    action: str,
    incident: Incident,
    *,
    after: dict,
    actor: User | None = None,
    before: dict | None = None,
    comment: str = "",
) -> None:
    record_audit(
        action,
        target=incident,
        actor=actor,
        actor_label=CORRELATOR if actor is None else "",
        before=before,
        after=after,
        comment=comment,
    )
    publish_change("incident.updated", target=incident, payload=_change(incident))


def _refresh(incident: Incident, *, always_save: bool = False) -> None:
    """Recompute the severity (highest of the alerts) and the activity span (of the alerts' evidence)."""
    alerts = Alert.objects.filter(incident_link__incident=incident)
    span = alerts.aggregate(first=Min("first_activity_at"), last=Max("last_activity_at"))
    severities = set(alerts.values_list("severity", flat=True).distinct())
    severity = max(severities, key=lambda s: SEVERITY_RANK.get(s, -1)) if severities else incident.severity
    first = span["first"] or incident.first_activity_at
    last = max(span["last"], incident.last_activity_at) if span["last"] else incident.last_activity_at
    changed = (severity, first, last) != (
        incident.severity,
        incident.first_activity_at,
        incident.last_activity_at,
    )
    if not changed and not always_save:
        return
    before_severity = incident.severity
    incident.severity, incident.first_activity_at, incident.last_activity_at = severity, first, last
    incident.save(update_fields=["title", "severity", "first_activity_at", "last_activity_at", "updated_at"])
    if changed and not always_save:
        _record(
            "incidents.incident.activity_updated",
            incident,
            before={"severity": before_severity},
            after={"severity": severity, "last_activity_at": last.isoformat()},
        )


def _reopen(incident: Incident, *, actor: User | None, comment: str) -> None:
    before = _state(incident)
    incident.status = Incident.Status.ACTIVE
    incident.resolved_at = None
    incident.resolved_by = None
    incident.save(update_fields=["status", "resolved_at", "resolved_by", "updated_at"])
    record_audit(
        "incidents.incident.reopened",
        target=incident,
        actor=actor,
        actor_label=CORRELATOR if actor is None else "",
        before=before,
        after=_state(incident),
        comment=comment,
    )
    publish_change("incident.reopened", target=incident, payload=_change(incident))


# ------------------------------------------------------------------------------------------------ triage


def _require(actor: User) -> None:
    if not actor.has_perm(TRIAGE_PERMISSION):
        raise IncidentError("Only security operators and administrators may triage incidents.")


def _check_assignee(assignee: User | None) -> None:
    if assignee is not None and (not assignee.is_active or not assignee.has_perm(TRIAGE_PERMISSION)):
        raise IncidentError(f"{assignee.get_username()} may not triage incidents.")


def assign_incident(incident: Incident, *, actor: User, assignee: User | None) -> Incident:
    """Assign the incident to a person who may triage (None unassigns); an Active incident becomes In
    progress."""
    _require(actor)
    _check_assignee(assignee)
    with transaction.atomic():
        incident = _locked(incident)
        return _assign(incident, actor=actor, assignee=assignee)


def _assign(incident: Incident, *, actor: User, assignee: User | None) -> Incident:
    if incident.assigned_to_id == (assignee.pk if assignee else None):
        return incident
    before = _state(incident)
    incident.assigned_to = assignee
    if assignee is not None and incident.status == Incident.Status.ACTIVE:
        incident.status = Incident.Status.IN_PROGRESS
    incident.save(update_fields=["assigned_to", "status", "updated_at"])
    _record("incidents.incident.assigned", incident, actor=actor, before=before, after=_state(incident))
    return incident


def set_incident_status(incident: Incident, *, actor: User, status: str) -> Incident:
    """Active ↔ In progress; a resolved incident set to either is reopened. Resolving goes through
    :func:`resolve_incident` (it needs a classification)."""
    _require(actor)
    if status == Incident.Status.RESOLVED:
        raise IncidentError("Use resolve to resolve an incident (it needs a classification).")
    if status not in Incident.Status.values:
        raise IncidentError(f"Unknown status {status!r}.")
    with transaction.atomic():
        _lock_mailbox(incident.mailbox_id)  # the correlation's lock order: mailbox, then incident
        incident = _locked(incident)
        if incident.status == Incident.Status.RESOLVED:
            incident = _reopen_checked(incident, actor=actor, comment="Reopened by hand.")
        if incident.status == status:
            return incident
        before = _state(incident)
        incident.status = status
        incident.save(update_fields=["status", "updated_at"])
        _record(
            "incidents.incident.status_changed", incident, actor=actor, before=before, after=_state(incident)
        )
    return incident


def reopen_incident(incident: Incident, *, actor: User, comment: str = "") -> Incident:
    """Reopen a resolved incident (Active), unless the user already has another open incident."""
    _require(actor)
    with transaction.atomic():
        _lock_mailbox(incident.mailbox_id)
        incident = _locked(incident)
        if incident.status != Incident.Status.RESOLVED:
            raise IncidentError("Only a resolved incident can be reopened.")
        return _reopen_checked(incident, actor=actor, comment=comment.strip() or "Reopened by hand.")


def _reopen_checked(incident: Incident, *, actor: User, comment: str) -> Incident:
    """With the mailbox locked: reopen, unless the user has another open incident."""
    other = Incident.objects.open().for_mailbox(incident.mailbox).exclude(pk=incident.pk).first()
    if other is not None:
        raise IncidentError(
            f"{incident.mailbox.address} already has an open incident (#{other.pk}); work that one instead."
        )
    _reopen(incident, actor=actor, comment=comment)
    return incident


def resolve_incident(incident: Incident, *, actor: User, classification: str, comment: str = "") -> Incident:
    """Resolve with a classification (and an optional determination comment); the incident's open alerts are
    resolved with the same classification through the alerts service. All or nothing."""
    _require(actor)
    if classification not in Alert.Classification.values:
        raise IncidentError(f"Unknown classification {classification!r}.")
    with transaction.atomic():
        incident = _locked(incident)
        return _resolve(incident, actor=actor, classification=classification, comment=comment.strip())


def _resolve(incident: Incident, *, actor: User, classification: str, comment: str) -> Incident:
    if incident.status == Incident.Status.RESOLVED:
        return incident
    before = _state(incident)
    alerts = Alert.objects.open().filter(incident_link__incident=incident).order_by("pk")
    resolved = []
    for alert in alerts:
        alert_services.resolve_alert(
            alert,
            actor=actor,
            classification=classification,
            comment=comment or f"Resolved with incident #{incident.pk}.",
        )
        resolved.append(alert.pk)
    incident.status = Incident.Status.RESOLVED
    incident.classification = classification
    incident.determination = comment
    incident.resolved_at = timezone.now()
    incident.resolved_by = actor
    incident.save(
        update_fields=[
            "status",
            "classification",
            "determination",
            "resolved_at",
            "resolved_by",
            "updated_at",
        ]
    )
    record_audit(
        "incidents.incident.resolved",
        target=incident,
        actor=actor,
        before=before,
        after={**_state(incident), "alerts_resolved": resolved},
        comment=comment,
    )
    publish_change("incident.resolved", target=incident, payload=_change(incident))
    return incident


def _bulk(incidents: Iterable[Incident]) -> list[Incident]:
    chosen = sorted({i.pk for i in incidents})
    if not chosen:
        raise IncidentError("Select at least one incident.")
    if len(chosen) > BULK_LIMIT:
        raise IncidentError(f"Work on at most {BULK_LIMIT} incidents at a time.")
    locked = list(
        Incident.objects.select_for_update(of=("self",)).with_related().filter(pk__in=chosen).order_by("pk")
    )
    if len(locked) != len(chosen):
        raise IncidentError("Some selected incidents no longer exist.")
    return locked


def bulk_assign_incidents(incidents: Iterable[Incident], *, actor: User, assignee: User | None) -> int:
    """Assign several incidents at once (all or nothing); returns how many changed."""
    _require(actor)
    _check_assignee(assignee)
    with transaction.atomic():
        changed = 0
        for incident in _bulk(incidents):
            before = incident.assigned_to_id
            _assign(incident, actor=actor, assignee=assignee)
            changed += before != incident.assigned_to_id
    return changed


def bulk_resolve_incidents(
    incidents: Iterable[Incident], *, actor: User, classification: str, comment: str = ""
) -> int:
    """Resolve several incidents (and their open alerts) at once, all or nothing; returns how many were
    open."""
    _require(actor)
    if classification not in Alert.Classification.values:
        raise IncidentError(f"Unknown classification {classification!r}.")
    with transaction.atomic():
        changed = 0
        for incident in _bulk(incidents):
            if incident.status != Incident.Status.RESOLVED:
                _resolve(incident, actor=actor, classification=classification, comment=comment.strip())
                changed += 1
    return changed


__all__ = [
    "assign_incident",
    "bulk_assign_incidents",
    "bulk_resolve_incidents",
    "correlate_alert",
    "correlate_investigation",
    "correlate_restriction",
    "reopen_incident",
    "resolve_incident",
    "set_incident_status",
]
