"""The audit actions of core and the change-feed kind each publishes (see :mod:`core.feed`)."""

from .feed import declare_audit_actions

declare_audit_actions(
    {},
    internal={
        "core.tenant.*": "tenant settings and checks: configuration, not a security event",
        "core.api_token.*": "integration credentials: configuration, kept in the audit log",
        "core.login.*": "console accounts: configuration, kept in the audit log",
        "core.retention.*": "housekeeping of old telemetry",
        "core.audit.*": "the privileged purge of old audit rows, itself audited",
    },
)
