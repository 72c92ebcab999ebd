"""The audit actions of mailboxes and the change-feed kind each publishes (see :mod:`core.feed`)."""

from core.feed import declare_audit_actions

declare_audit_actions(
    {},
    internal={
        "mailboxes.*": (
            "directory telemetry (mailboxes, rules, forwarding, delegations, domains) that the mail platform "
            "itself reports; what the console concludes from it is published as alerts"
        ),
    },
)
