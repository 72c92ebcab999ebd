from django.apps import AppConfig


class InvestigationsConfig(AppConfig):
    name = "investigations"
    verbose_name = "Automated investigations"

    def ready(self) -> None:
        # The action side's tasks are registered in every process (web, worker, beat) so that enqueuing them
        # by name works, and runs them in-process in embedded mode.
        from core.retention import register_guard
        from restricted_users.services import register_checklist_source

        from . import (  # noqa: F401 - the playbook's tasks too (start, run)
            action_tasks,
            audit_kinds,
            tasks,
        )
        from .release_checklist import release_checklist_ticks
        from .retention import keep_open_investigations_telemetry

        # Completed remediation actions tick the Restricted Users release checklist.
        register_checklist_source(release_checklist_ticks)
        # A mailbox's telemetry outlives the retention window while an investigation of it is open.
        register_guard(keep_open_investigations_telemetry)
