from django.apps import AppConfig


class RestrictedUsersConfig(AppConfig):
    name = "restricted_users"
    verbose_name = "Restricted users"

    def ready(self) -> None:
        # Register the beat tasks in every process (Celery's autodiscovery only runs inside a worker), so that
        # enqueuing them by name runs them in-process in embedded mode instead of sending them nowhere.
        from . import (
            audit_kinds,  # noqa: F401 - declare the audit actions and their feed kinds
            tasks,  # noqa: F401
        )
