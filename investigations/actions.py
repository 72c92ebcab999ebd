"""The public names of the remediation-action services, wherever they live: decisions, execution and manual
steps in :mod:`investigations.action_services`, undo in :mod:`investigations.action_undo`, the beat
housekeeping in :mod:`investigations.action_beat`. The console and the tests import from here."""

from .action_beat import (
    expire_pending_actions,
    reap_expired_leases,
)
from .action_services import (
    ALERT_RESOLVER,
    BULK_LIMIT,
    DECIDE_PERMISSION,
    EXECUTE_TASK,
    STOP_PERMISSION,
    STOP_REJECTS,
    UNDO_PERMISSION,
    UNDO_TASK,
    Status,
    Type,
    decide_actions,
    decision_problems,
    lease,
    mark_manual_action,
    max_attempts,
    reopen_investigation_alerts,
    resolve_investigation_alerts,
    retry_delay,
    run_approved_action,
    settle_investigation,
    stop_investigation,
)
from .action_undo import (
    perform_requested_undo,
    record_undo_failure,
    request_undo,
    undo_action,
    undo_refusal,
)
from .exceptions import (
    ActionError,
    ActionPermissionError,
)

__all__ = [
    "ALERT_RESOLVER",
    "ActionError",
    "ActionPermissionError",
    "BULK_LIMIT",
    "DECIDE_PERMISSION",
    "EXECUTE_TASK",
    "STOP_PERMISSION",
    "STOP_REJECTS",
    "Status",
    "Type",
    "UNDO_PERMISSION",
    "UNDO_TASK",
    "decide_actions",
    "decision_problems",
    "expire_pending_actions",
    "lease",
    "mark_manual_action",
    "max_attempts",
    "perform_requested_undo",
    "reap_expired_leases",
    "record_undo_failure",
    "reopen_investigation_alerts",
    "request_undo",
    "resolve_investigation_alerts",
    "retry_delay",
    "run_approved_action",
    "settle_investigation",
    "stop_investigation",
    "undo_action",
    "undo_refusal",
]
