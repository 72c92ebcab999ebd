"""The audit actions of alerts and the change-feed kind each publishes (see :mod:`core.feed`)."""

from core.feed import declare_audit_actions

declare_audit_actions(
    {
        "alerts.alert.raised": "alert.raised",
        "alerts.alert.folded": "alert.updated",
        "alerts.alert.status_changed": "alert.updated",
        "alerts.alert.assigned": "alert.updated",
        "alerts.alert.resolved": "alert.resolved",
        "alerts.alert.reopened": "alert.reopened",
    },
    internal={
        "alerts.alert.commented": "a note on an alert; its state does not change",
        "alerts.policy.*": "policy configuration, kept in the audit log",
    },
)
