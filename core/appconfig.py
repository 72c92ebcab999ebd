"""The base of this project's app configs. Import the module, not the class (``from core import appconfig``):
Django picks an app's config as the one AppConfig subclass its ``apps.py`` holds, and a second one there (this
base, imported by name) would make it fall back silently to a plain AppConfig, whose ``ready()`` is empty.
"""

from importlib import import_module

from django.apps import AppConfig


class DomainAppConfig(AppConfig):
    """An app of this project. ``ready()`` imports its ``registers`` modules in every process (web,
    worker, beat, tests, embedded mode), not only where Celery's autodiscovery runs (inside a worker):
    ``audit_kinds`` declares the app's audit actions and their feed kinds, ``tasks`` registers its Celery
    tasks, so that a task enqueued by name runs in-process in embedded mode instead of being sent nowhere.
    Then :meth:`connect` plugs the app into lower layers (retention tables and guards, signal receivers)."""

    registers: tuple[str, ...] = ("audit_kinds", "tasks")

    def ready(self) -> None:
        for module in self.registers:
            import_module(f"{self.name}.{module}")
        self.connect()

    def connect(self) -> None:
        """Register what the app adds to lower layers; nothing by default."""
