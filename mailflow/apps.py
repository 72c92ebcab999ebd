from django.apps import AppConfig


class MailflowConfig(AppConfig):
    name = "mailflow"
    verbose_name = "Mail flow: message events and ingest"

    def ready(self) -> None:
        from core.retention import LEDGER, RetainedTable, register_guard, register_table

        from .retention import keep_ledger_of_stored_events

        register_table(
            RetainedTable(
                "messages",
                "mailflow.MessageEvent",
                "time",
                mailbox_field="sender",
                evidence_kinds=("message",),
            )
        )
        register_table(RetainedTable(LEDGER, "mailflow.IngestedEvent", "time"))
        register_guard(keep_ledger_of_stored_events)
