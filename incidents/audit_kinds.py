"""The audit actions of incidents and the change-feed kind each publishes (see :mod:`core.feed`)."""

from core.feed import declare_audit_actions

declare_audit_actions(
    {
        "incidents.incident.created": "incident.created",
        "incidents.incident.alert_added": "incident.updated",
        "incidents.incident.restriction_added": "incident.updated",
        "incidents.incident.investigation_added": "incident.updated",
        "incidents.incident.activity_updated": "incident.updated",
        "incidents.incident.assigned": "incident.updated",
        "incidents.incident.status_changed": "incident.updated",
        "incidents.incident.resolved": "incident.resolved",
        "incidents.incident.reopened": "incident.reopened",
    }
)
