"""The audit actions of the self-hosted mail connector (see :mod:`core.feed`)."""

from core.feed import declare_audit_actions

declare_audit_actions(
    {}, internal={"mailstack.*": "connector configuration, secrets and checks, kept in the audit log"}
)
