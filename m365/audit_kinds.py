"""The audit actions of the Microsoft 365 connector (see :mod:`core.feed`)."""

from core.feed import declare_audit_actions

declare_audit_actions({}, internal={"m365.*": "connector configuration and checks, kept in the audit log"})
