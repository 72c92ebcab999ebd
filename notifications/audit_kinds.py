"""The audit actions of notifications (see :mod:`core.feed`)."""

from core.feed import declare_audit_actions

declare_audit_actions(
    {}, internal={"notifications.*": "webhook and mail configuration, kept in the audit log"}
)
