"""Celery tasks of the action side (queue ``act``; the ``beat_*`` ones on ``beat``): thin wrappers over
:mod:`investigations.actions`, each idempotent because the services claim their rows with conditional updates.

Registered from ``InvestigationsConfig.ready`` so every process (web, worker, beat) knows them by name.
"""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from . import actions


@shared_task(
    name="investigations.execute_action",
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def execute_action(action_id: int) -> None:
    """Execute an approved action. The service claims the row; a redelivery finds it claimed and returns, and
    connector retries are scheduled by the service itself (Approved again, enqueued with a countdown)."""
    actions.run_approved_action(action_id)


@shared_task(
    name="investigations.undo_action",
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def undo_action(action_id: int, actor_id: int, comment: str, attempt: int = 1) -> None:
    """Undo a completed reversible action an operator asked to undo. The service re-checks everything under
    the row locks (a duplicate delivery changes nothing) and schedules the next attempt itself after a
    transient connector error."""
    actions.perform_requested_undo(action_id, actor_id, comment, attempt)


@shared_task(
    name="investigations.beat_reap_leases",
    ignore_result=True,
    autoretry_for=(OperationalError,),
    max_retries=2,
)
def beat_reap_leases() -> None:
    """Periodic: return Running actions whose worker died (lease expired) to Approved, enqueued again."""
    actions.reap_expired_leases()


@shared_task(
    name="investigations.beat_expire_actions",
    ignore_result=True,
    autoretry_for=(OperationalError,),
    max_retries=2,
)
def beat_expire_actions() -> None:
    """Periodic: expire Pending actions nobody decided within 7 days."""
    actions.expire_pending_actions()
