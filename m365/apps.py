from django.apps import AppConfig


class M365Config(AppConfig):
    name = "m365"
    verbose_name = "Microsoft 365 connector"

    def ready(self) -> None:
        from . import tasks  # noqa: F401 - register the m365.* tasks in every process
