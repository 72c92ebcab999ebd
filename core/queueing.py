"""How domain code talks to Celery: one way to enqueue on commit, one decorator with one retry policy.

Every app enqueues by task **name** (``current_app.signature(name, args).apply_async()``), never by
importing a higher layer's task and never with ``send_task``: a name crosses the layers (DESIGN section 2),
and the signature goes through the registered task, so the embedded mode's ``CELERY_TASK_ALWAYS_EAGER`` still
runs it in-process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from celery import Task, current_app, shared_task
from django.db import OperationalError, transaction

#: The retry policy of every domain task: a lost database connection or a serialization failure is retried
#: with exponential backoff, five times; anything else is the service's business (it records the failure on
#: its row and schedules its own retry where the domain has one, e.g. a connector error or a failed webhook).
RETRY_POLICY: dict[str, Any] = {
    "acks_late": True,
    "ignore_result": True,
    "retry_backoff": True,
    "max_retries": 5,
}


def enqueue(name: str, *args: Any, countdown: float | None = None) -> None:
    """Send the task ``name`` with ``args`` now (outside a transaction, e.g. from a beat task or a retry)."""
    options = {} if countdown is None else {"countdown": countdown}
    current_app.signature(name, args=args, **options).apply_async()


def enqueue_on_commit(name: str, *args: Any, countdown: float | None = None) -> None:
    """Send the task ``name`` with ``args`` once the current transaction commits (at once outside one).

    A rolled-back change enqueues nothing, and a worker never reads a row before it is committed.
    """
    transaction.on_commit(lambda: enqueue(name, *args, countdown=countdown))


def domain_task[**P, R](
    name: str, *, retry_on: tuple[type[BaseException], ...] = ()
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """Register a thin, idempotent domain task under ``name`` with :data:`RETRY_POLICY`.

    ``retry_on`` adds transient errors of the task's own domain (e.g. an unreachable mail server) to the
    database errors every task retries on.
    """
    return shared_task(name=name, autoretry_for=(OperationalError, *retry_on), **RETRY_POLICY)


def fan_out(task: Task[[int], Any], ids: Iterable[int]) -> int:
    """Send ``task`` once per id (from a beat task: one message per connection or tenant); how many."""
    sent = 0
    for pk in ids:
        task.delay(pk)
        sent += 1
    return sent
