"""The project package: settings, the Celery app, root URLs and /healthz."""

from .celery import app as celery_app

__all__ = ["celery_app"]
