from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications: email and webhooks"

    def ready(self) -> None:
        from . import (
            audit_kinds,  # noqa: F401 - declare the audit actions and their feed kinds
            tasks,  # noqa: F401 - register the notifications.* tasks in every process
        )
