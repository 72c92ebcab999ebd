from core import appconfig


class M365Config(appconfig.DomainAppConfig):
    name = "m365"
    verbose_name = "Microsoft 365 connector"

    def connect(self) -> None:
        from core.retention import RetainedTable, register_table

        register_table(
            RetainedTable("m365_pull_runs", "m365.PullRun", "started_at", tenant_field="connection__tenant")
        )
