from core import appconfig


class InvestigationsConfig(appconfig.DomainAppConfig):
    name = "investigations"
    verbose_name = "Automated investigations"
    # The action side's tasks too, besides the playbook's (start, run).
    registers = ("audit_kinds", "tasks", "action_tasks")

    def connect(self) -> None:
        from core.retention import register_guard
        from restricted_users.services import register_checklist_source

        from .release_checklist import release_checklist_ticks
        from .retention import keep_open_investigations_telemetry

        # Completed remediation actions tick the Restricted Users release checklist.
        register_checklist_source(release_checklist_ticks)
        # A mailbox's telemetry outlives the retention window while an investigation of it is open.
        register_guard(keep_open_investigations_telemetry)
