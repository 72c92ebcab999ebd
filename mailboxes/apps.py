from core import appconfig


class MailboxesConfig(appconfig.DomainAppConfig):
    name = "mailboxes"
    verbose_name = "Mailboxes: directory, rules, forwarding, delegations, sign-ins"
    registers = ("audit_kinds",)

    def connect(self) -> None:
        from core.retention import RetainedTable, register_table

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
