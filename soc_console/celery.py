"""The Celery app. Domain services enqueue by task name once their transaction commits, through
:func:`core.queueing.enqueue_on_commit`, and domain tasks are declared with :func:`core.queueing.domain_task`
(one retry policy). The Django task class is kept so tests and tools may still call ``delay_on_commit``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soc_console.settings")

app = Celery("soc_console", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
