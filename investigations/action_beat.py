"""The beat housekeeping of remediation actions: return the claims of dead workers (lease reaper) and expire
Pending actions nobody decided in time. Public through :mod:`investigations.actions`."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.queueing import enqueue_on_commit
from core.services import SYSTEM_ACTOR, record_audit

from .action_services import (
    EXECUTE_TASK,
    Status,
    _finish,
    _lock_action,
    _lock_investigations,
    _Outcome,
    _publish_action,
    _snapshot,
    lease,
    max_attempts,
    settle_investigation,
)
from .models import RemediationAction

logger = logging.getLogger(__name__)


def reap_expired_leases(now: datetime | None = None) -> int:
    """Return Running actions whose lease (``ACTION_LEASE_SECONDS``) has run out — their worker died — to
    Approved and enqueue them again (Failed once ``ACTION_MAX_ATTEMPTS`` claims were lost). Also re-enqueue
    Approved actions no worker picked up within a lease (a message lost between commit and broker).

    Rows a live worker holds are skipped (``skip_locked``), so a slow execution is never taken over. Returns
    the number of Running actions returned or failed.
    """
    now = now or timezone.now()
    cutoff = now - lease()
    reaped = 0
    stale = RemediationAction.objects.filter(status=Status.RUNNING, running_since__lt=cutoff)
    for action_id in stale.values_list("pk", flat=True):
        with transaction.atomic():
            locked = _lock_action(action_id, skip_locked=True)
            if locked is None:
                continue
            investigation, action = locked
            if (
                action.status != Status.RUNNING
                or action.running_since is None
                or action.running_since >= cutoff
            ):
                continue
            reaped += 1
            if action.attempts >= max_attempts():
                reason = f"its worker stopped during each of {action.attempts} attempts"
                _finish(investigation, action, _Outcome(Status.FAILED, f"Failed: {reason}.", None))
                continue
            before = _snapshot(action)
            action.status = Status.APPROVED
            action.running_since = None
            action.next_attempt_at = now
            action.result = (
                f"The worker running attempt {action.attempts} stopped before finishing (its "
                f"{int(lease().total_seconds())} s lease ran out); queued again."
            )
            action.save(update_fields=["status", "running_since", "next_attempt_at", "result"])
            record_audit(
                "investigations.action.lease_expired",
                target=action,
                actor_label=SYSTEM_ACTOR,
                before=before,
                after=_snapshot(action),
            )
            enqueue_on_commit(EXECUTE_TASK, action.pk)
    waiting = RemediationAction.objects.filter(status=Status.APPROVED).filter(
        Q(next_attempt_at__lt=cutoff) | Q(next_attempt_at__isnull=True, decided_at__lt=cutoff)
    )
    for action_id in waiting.values_list("pk", flat=True):
        bumped = (
            RemediationAction.objects.filter(pk=action_id, status=Status.APPROVED)
            .filter(Q(next_attempt_at__lt=cutoff) | Q(next_attempt_at__isnull=True))
            .update(next_attempt_at=now)
        )
        if bumped:
            logger.info("Remediation action %s was approved but never picked up; enqueued again", action_id)
            with transaction.atomic():
                enqueue_on_commit(EXECUTE_TASK, action_id)
    return reaped


def expire_pending_actions(now: datetime | None = None) -> int:
    """Expire Pending actions whose ``expires_at`` (7 days after they were proposed) has passed, audited as
    the system; their investigations' statuses follow (e.g. Terminated by system). Returns how many expired.
    Investigations another process holds are skipped until the next run."""
    now = now or timezone.now()
    due: dict[int, list[int]] = defaultdict(list)
    for pk, investigation_id in RemediationAction.objects.filter(
        status=Status.PENDING, expires_at__lte=now
    ).values_list("pk", "investigation_id"):
        due[investigation_id].append(pk)
    expired = 0
    for investigation_id, ids in sorted(due.items()):
        with transaction.atomic():
            locked = _lock_investigations([investigation_id], skip_locked=True)
            if not locked:
                continue
            investigation = locked[0]
            actions = (
                RemediationAction.objects.select_for_update(of=("self",))
                .select_related("tenant", "investigation__mailbox")
                .filter(pk__in=ids, status=Status.PENDING, expires_at__lte=now)
                .order_by("pk")
            )
            for action in actions:
                before = _snapshot(action)
                action.status = Status.EXPIRED
                action.result = f"Expired: nobody decided it within {_days(action)} days."
                action.save(update_fields=["status", "result"])
                record_audit(
                    "investigations.action.expired",
                    target=action,
                    actor_label=SYSTEM_ACTOR,
                    before=before,
                    after=_snapshot(action),
                )
                _publish_action("action.expired", action, expired_at=action.expires_at.isoformat())
                expired += 1
            settle_investigation(investigation)
    return expired


def _days(action: RemediationAction) -> int:
    return max(1, round((action.expires_at - action.proposed_at).total_seconds() / 86400))
