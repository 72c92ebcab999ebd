"""The Celery app. Tasks use Celery's Django task class, so services enqueue with ``delay_on_commit``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soc_console.settings")

app = Celery("soc_console", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
