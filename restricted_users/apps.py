from django.apps import AppConfig


class RestrictedUsersConfig(AppConfig):
    name = "restricted_users"
    verbose_name = "Restricted users"

    def ready(self) -> None:
        # Register the beat tasks in every process (Celery's autodiscovery only runs inside a worker), so that
        # enqueuing them by name runs them in-process in embedded mode instead of sending them nowhere.
        from . import tasks  # noqa: F401
