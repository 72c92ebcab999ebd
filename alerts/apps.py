from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts and alert policies"

    def ready(self) -> None:
        from core.retention import register_guard

        # Register the tasks in every process (web, tests, embedded mode), not only in workers, so that tasks
        # enqueued by name run in-process in embedded mode.
        from . import (
            audit_kinds,  # noqa: F401 - declare the audit actions and their feed kinds
            tasks,  # noqa: F401
        )
        from .retention import keep_alert_evidence

        register_guard(keep_alert_evidence)  # the events behind an alert outlive the retention window
