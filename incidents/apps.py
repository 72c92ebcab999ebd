from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"

    def ready(self) -> None:
        # Registered in every process, so tasks enqueued by name run in-process in embedded mode.
        from . import tasks  # noqa: F401
