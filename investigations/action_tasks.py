"""Celery tasks of the action side (queue ``act``; the ``beat_*`` ones on ``beat``): thin wrappers over
:mod:`investigations.actions`, each idempotent because the services claim their rows with
conditional updates.

Registered from ``InvestigationsConfig.ready`` so every process (web, worker, beat) knows them by name.
"""

from __future__ import annotations

from core.queueing import domain_task

from . import action_beat, action_services, action_undo


@domain_task("investigations.execute_action")
def execute_action(action_id: int) -> None:
    """Execute an approved action. The service claims the row; a redelivery finds it claimed and returns, and
    connector retries are scheduled by the service itself (Approved again, enqueued with a countdown)."""
    action_services.run_approved_action(action_id)


@domain_task("investigations.undo_action")
def undo_action(action_id: int, actor_id: int, comment: str, attempt: int = 1) -> None:
    """Undo a completed reversible action an operator asked to undo. The service re-checks everything under
    the row locks (a duplicate delivery changes nothing) and schedules the next attempt itself after a
    transient connector error."""
    action_undo.perform_requested_undo(action_id, actor_id, comment, attempt)


@domain_task("investigations.beat_reap_leases")
def beat_reap_leases() -> None:
    """Periodic: return Running actions whose worker died (lease expired) to Approved, enqueued again."""
    action_beat.reap_expired_leases()


@domain_task("investigations.beat_expire_actions")
def beat_expire_actions() -> None:
    """Periodic: expire Pending actions nobody decided within 7 days."""
    action_beat.expire_pending_actions()
