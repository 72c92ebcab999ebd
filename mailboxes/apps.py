from django.apps import AppConfig


class MailboxesConfig(AppConfig):
    name = "mailboxes"
    verbose_name = "Mailboxes: directory, rules, forwarding, delegations, sign-ins"

    def ready(self) -> None:
        from core.retention import RetainedTable, register_table

        from . import audit_kinds  # noqa: F401 - declare the audit actions and their feed kinds

        register_table(
            RetainedTable(
                "sign_ins",
                "mailboxes.SignIn",
                "time",
                mailbox_field="mailbox",
                evidence_kinds=("sign_in",),
                partition_days=1,
            )
        )
        register_table(
            RetainedTable(
                "directory_changes",
                "mailboxes.DirectoryChange",
                "at",
                mailbox_field="mailbox",
                evidence_kinds=("inbox_rule", "forwarding", "delegation"),
                partition_days=1,
            )
        )
