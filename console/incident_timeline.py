"""The incident page's one timeline: first attacker activity, alerts raised and folded, restrictions placed
and released, investigation runs and status changes, actions proposed and decided, executed, expired and
undone, and the incident's own status changes, in time order, each linked to its object.

It is built from the rows (the earliest evidence, each action's proposal, a restriction's expiry by time) and
the audit trail of the incident's objects, read in a fixed number of queries whatever the incident's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from operator import or_

from django.db.models import Model, Q
from django.urls import reverse

from alerts.models import Alert
from core.models import AuditEvent
from incidents.models import Incident
from investigations.models import Investigation, RemediationAction
from restricted_users.models import Restriction

from . import presenters

TIMELINE_CAP = 1000

# The timeline's own wording where it differs from (or is missing in) presenters.ACTION_LABELS, which names
# every other action.
LABELS = {
    "investigations.investigation.alert_attached": "Alert attached to the investigation",
    "investigations.action.completed": "Action executed",
    "investigations.action.lease_expired": "Action worker lease expired",
    "incidents.incident.activity_updated": "Incident severity or activity updated",
}


@dataclass(frozen=True)
class Entry:
    """One line of the timeline: when, what, about which object (label and link), by whom, and details."""

    at: datetime
    kind: str  # the CSS hook: attacker, alert, restriction, investigation, action, incident
    label: str
    subject: str
    url: str
    actor: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Related:
    """The incident's objects, each read once, for the page's lists and the timeline."""

    alerts: list[Alert]
    restrictions: list[Restriction]
    investigations: list[Investigation]
    actions: list[RemediationAction]


def related_objects(incident: Incident) -> Related:
    alerts = list(
        Alert.objects.filter(incident_link__incident=incident)
        .select_related("policy", "mailbox", "tenant", "assigned_to")
        .order_by("first_activity_at", "pk")
    )
    restrictions = list(
        Restriction.objects.filter(incident_link__incident=incident).order_by("placed_at", "pk")
    )
    investigations = list(
        Investigation.objects.filter(incident_link__incident=incident).order_by("created_at", "pk")
    )
    actions = list(
        RemediationAction.objects.filter(investigation__incident_link__incident=incident)
        .select_related("decided_by")
        .order_by("proposed_at", "pk")
    )
    return Related(alerts, restrictions, investigations, actions)


def _change(before: object, after: object) -> str:
    """ "Status: New → In progress"-style words for the state keys an audit row changed."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return ""
    keys = ("status", "state", "severity", "assignee", "assigned_to", "classification")
    picked_before = {
        key: before.get(key) for key in keys if key in after and before.get(key) != after.get(key)
    }
    picked_after = {key: after[key] for key in picked_before}
    return "; ".join(presenters.change_lines(picked_before, picked_after))


def _key(obj: Model) -> tuple[str, str]:
    """How the audit trail names an object (its target type and id)."""
    return obj._meta.label_lower, str(obj.pk)


def _subject(obj: Model) -> tuple[str, str, str]:
    """How the timeline names an object: its kind (the CSS hook), its label and its link."""
    if isinstance(obj, Alert):
        return "alert", f"Alert #{obj.pk}: {obj.title}", reverse("console:alert_detail", args=[obj.pk])
    if isinstance(obj, Restriction):
        url = reverse("console:restricted_user_detail", args=[obj.pk])
        return "restriction", f"Restriction #{obj.pk} ({obj.policy_name})", url
    if isinstance(obj, Investigation):
        return (
            "investigation",
            f"Investigation #{obj.pk}",
            reverse("console:investigation_detail", args=[obj.pk]),
        )
    if isinstance(obj, RemediationAction):
        url = reverse("console:investigation_detail", args=[obj.investigation_id]) + f"#action-{obj.pk}"
        return "action", f"{obj.get_action_type_display()}: {obj.target_label}", url
    return "incident", f"Incident #{obj.pk}", ""


def build_timeline(incident: Incident, related: Related) -> tuple[list[Entry], bool]:
    """The timeline entries in time order, and whether the audit part was cut at :data:`TIMELINE_CAP`."""
    subjects = {
        _key(obj): _subject(obj)
        for obj in (
            *related.alerts,
            *related.restrictions,
            *related.investigations,
            *related.actions,
            incident,
        )
    }

    entries: list[Entry] = []
    if related.alerts:
        first = min(related.alerts, key=lambda a: (a.first_activity_at, a.pk))
        kind, subject, url = subjects[_key(first)]
        entries.append(Entry(first.first_activity_at, "attacker", "First attacker activity", subject, url))
    for action in related.actions:
        kind, subject, url = subjects[_key(action)]
        entries.append(
            Entry(
                action.proposed_at,
                kind,
                "Action proposed",
                subject,
                url,
                f"Investigation #{action.investigation_id}",
            )
        )
    for restriction in related.restrictions:
        # Ended by time, not yet closed by beat (so no audit row yet): the expiry is still an event.
        expired_at = restriction.expires_at  # set on every restriction that can expire
        if restriction.closed_at is None and restriction.state == Restriction.State.EXPIRED and expired_at:
            kind, subject, url = subjects[_key(restriction)]
            entries.append(Entry(expired_at, kind, "Restriction expired", subject, url))

    by_type: dict[str, list[str]] = {}
    for target_type, target_id in subjects:
        by_type.setdefault(target_type, []).append(target_id)
    condition = reduce(or_, (Q(target_type=t, target_id__in=ids) for t, ids in by_type.items()))
    events = list(
        AuditEvent.objects.filter(condition)
        .exclude(action="alerts.alert.commented")
        .order_by("-at", "-id")[: TIMELINE_CAP + 1]
    )
    cut = len(events) > TIMELINE_CAP
    for event in events[:TIMELINE_CAP]:
        kind, subject, url = subjects[(event.target_type, event.target_id)]
        label = LABELS.get(event.action) or presenters.action_label(event.action)
        detail = " · ".join(filter(None, (_change(event.before, event.after), event.comment)))
        entries.append(Entry(event.at, kind, label, subject, url, event.actor_label, detail))
    entries.sort(key=lambda e: e.at)
    return entries, cut
