from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts and alert policies"

    def ready(self) -> None:
        # Register the tasks in every process (web, tests, embedded mode), not only in workers, so that tasks
        # enqueued by name run in-process in embedded mode.
        from . import tasks  # noqa: F401
