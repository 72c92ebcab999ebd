"""The audit actions of restrictions and the change-feed kind each publishes (see :mod:`core.feed`)."""

from core.feed import declare_audit_actions

declare_audit_actions(
    {
        "restricted_users.restriction.placed": "restriction.placed",
        "restricted_users.restriction.extended": "restriction.extended",
        "restricted_users.restriction.released": "restriction.released",
        "restricted_users.restriction.expired": "restriction.expired",
    }
)
