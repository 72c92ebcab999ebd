"""The audit actions of investigations and the change-feed kind each publishes (see :mod:`core.feed`)."""

from core.feed import declare_audit_actions

declare_audit_actions(
    {
        "investigations.investigation.opened": "investigation.opened",
        "investigations.investigation.analyzed": "investigation.status_changed",
        "investigations.investigation.failed": "investigation.status_changed",
        "investigations.investigation.status_changed": "investigation.status_changed",
        "investigations.investigation.stopped": "investigation.stopped",
        "investigations.action.proposed": "action.proposed",
        "investigations.action.approved": "action.decided",
        "investigations.action.rejected": "action.decided",
        "investigations.action.completed": "action.completed",
        "investigations.action.failed": "action.updated",
        "investigations.action.manual_step_required": "action.updated",
        "investigations.action.manual_completed": "action.completed",
        "investigations.action.manual_failed": "action.updated",
        "investigations.action.undone": "action.undone",
        "investigations.action.undo_failed": "action.updated",
        "investigations.action.expired": "action.expired",
    },
    internal={
        "investigations.investigation.run_started": "a run in progress; its outcome is published",
        "investigations.investigation.correlated": "a new trigger re-runs the analyzers (outcome published)",
        "investigations.action.undo_requested": "the request; the undo itself, or its failure, is published",
        "investigations.action.retry_scheduled": "a transient connector error being retried by the worker",
        "investigations.action.lease_expired": "a worker died; the action is queued again unchanged",
    },
)
