from core import appconfig


class MailflowConfig(appconfig.DomainAppConfig):
    name = "mailflow"
    verbose_name = "Mail flow: message events and ingest"
    registers = ()

    def connect(self) -> None:
        from core.retention import LEDGER, RetainedTable, register_guard, register_table

        from .retention import SENDING_MINUTES, keep_ledger_of_stored_events, keep_minutes_of_stored_messages

        register_table(
            RetainedTable(
                "messages",
                "mailflow.MessageEvent",
                "time",
                mailbox_field="sender",
                evidence_kinds=("message",),
                partition_days=1,
            )
        )
        # Weekly: ingest looks an id up in every ledger partition (mailflow.staging), so fewer is cheaper.
        register_table(RetainedTable(LEDGER, "mailflow.IngestedEvent", "time", partition_days=7))
        register_table(RetainedTable(SENDING_MINUTES, "mailflow.SendingMinute", "time"))
        register_guard(keep_ledger_of_stored_events)
        register_guard(keep_minutes_of_stored_messages)
