from django.apps import AppConfig


class M365Config(AppConfig):
    name = "m365"
    verbose_name = "Microsoft 365 connector"

    def ready(self) -> None:
        from core.retention import RetainedTable, register_table

        from . import (
            audit_kinds,  # noqa: F401 - declare the audit actions and their feed kinds
            tasks,  # noqa: F401 - register the m365.* tasks in every process
        )

        register_table(
            RetainedTable("m365_pull_runs", "m365.PullRun", "started_at", tenant_field="connection__tenant")
        )
