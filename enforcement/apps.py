from django.apps import AppConfig


class EnforcementConfig(AppConfig):
    name = "enforcement"
    verbose_name = "Enforcement (Postfix policy service)"

    def ready(self) -> None:
        # Register the task in every process, so that sending it by name runs it in-process in embedded mode.
        from . import tasks  # noqa: F401
