"""Undoing a completed remediation action (DESIGN section 6): the check, the request an operator makes (sent
to ``investigations.undo_action``, since a connector may be a remote platform), the undo itself under the
project's lock order, and proposing the same clean-up again. Public through :mod:`investigations.actions`."""

from __future__ import annotations

import logging
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from core.queueing import enqueue_on_commit
from core.services import SYSTEM_ACTOR, record_audit

from .action_services import (
    UNDO_PERMISSION,
    UNDO_TASK,
    Status,
    _calls_of,
    _lock_for_person,
    _publish_action,
    _require,
    _snapshot,
    max_attempts,
    retry_delay,
    settle_investigation,
)
from .connectors import connector_for
from .exceptions import (
    ActionError,
    ConnectorError,
    TransientConnectorError,
)
from .models import ACTION_EXPIRY, RemediationAction

logger = logging.getLogger(__name__)


def undo_refusal(action: RemediationAction) -> str | None:
    """Why ``action`` cannot be undone, or None when it can."""
    return action.undo_refusal()


def request_undo(action: RemediationAction, *, actor: User, comment: str) -> None:
    """Check an undo and send it to ``investigations.undo_action`` (a connector may be a remote platform,
    so the undo runs in a worker; in-process in embedded mode). Operators only; needs a comment."""
    _require(actor, UNDO_PERMISSION, "Only security operators may undo remediation actions.")
    comment = comment.strip()
    if not comment:
        raise ActionError("Give a comment saying why the action is undone.")
    if refusal := undo_refusal(action):
        raise ActionError(refusal)
    with transaction.atomic():
        record_audit("investigations.action.undo_requested", target=action, actor=actor, comment=comment)
        enqueue_on_commit(UNDO_TASK, action.pk, actor.pk, comment)


def undo_action(action: RemediationAction, *, actor: User, comment: str) -> RemediationAction:
    """Put the target back as the action's ``prior_state`` records, through the tenant's connector; the action
    becomes Undone. Completed reversible actions only, operators only, with a comment; audited.

    Raises :class:`TransientConnectorError` for a retryable failure (the task retries) and
    :class:`ConnectorError` / :class:`ActionError` otherwise; the action then stays Completed.
    """
    _require(actor, UNDO_PERMISSION, "Only security operators may undo remediation actions.")
    comment = comment.strip()
    if not comment:
        raise ActionError("Give a comment saying why the action is undone.")
    with transaction.atomic():
        investigation, action = _lock_for_person(action.pk)
        if refusal := undo_refusal(action):
            raise ActionError(refusal)
        assert action.prior_state is not None  # undo_refusal() refuses an action without one
        result = connector_for(action.tenant).undo(action, action.prior_state)
        if result.manual:
            raise ActionError(
                f"The connector cannot undo this through an API; do it by hand: {result.manual_step}"
            )
        before = _snapshot(action)
        action.status = Status.UNDONE
        action.undone_by = actor
        action.undone_at = timezone.now()
        action.result = "\n".join(part for part in (action.result, f"Undone: {result.message}") if part)
        action.connector_calls = [*action.connector_calls, *_calls_of(result)]
        action.save(update_fields=["status", "undone_by", "undone_at", "result", "connector_calls"])
        again = _propose_again(action, now=action.undone_at)
        record_audit(
            "investigations.action.undone",
            target=action,
            actor=actor,
            before={**before, "prior_state": action.prior_state},
            after={**_snapshot(action), "proposed_again": again.pk},
            comment=comment,
        )
        _publish_action(
            "action.undone", action, undone_by=actor.get_username(), comment=comment, proposed_again=again.pk
        )
        settle_investigation(investigation)
    return action


# What makes a proposal the same clean-up: where it belongs, what it does and to which target.
_SAME_CLEAN_UP = ("tenant", "investigation", "finding", "action_type", "target", "target_label", "target_key")


def _propose_again(action: RemediationAction, *, now: datetime) -> RemediationAction:
    """After an undo the threat the action answered is back: propose the same clean-up again (Pending, a
    fresh 7-day clock), so the investigation reopens with something to decide. Audited as the playbook."""
    again = RemediationAction.objects.create(
        **{name: getattr(action, name) for name in _SAME_CLEAN_UP},
        status=Status.PENDING,
        proposed_at=now,
        expires_at=now + ACTION_EXPIRY,
    )
    record_audit(
        "investigations.action.proposed",
        target=again,
        actor_label="playbook",
        after=_snapshot(again),
        comment=f"Proposed again: action #{action.pk} was undone.",
    )
    _publish_action("action.proposed", again, reason="undo", undone_action=action.pk)
    return again


def perform_requested_undo(action_id: int, actor_id: int, comment: str, attempt: int = 1) -> str | None:
    """The worker side of :func:`request_undo`; returns the action's status, or None when it is gone.

    A transient connector error enqueues the next attempt with backoff (the attempt number travels with the
    task) up to ``ACTION_MAX_ATTEMPTS``. An undo that cannot happen (a permanent connector error, the action
    changed meanwhile, transient errors to the last attempt) is recorded in the audit trail as ``undo_failed``
    with the reason, and the action stays Completed. A duplicate delivery finds it Undone and does nothing.
    """
    action = RemediationAction.objects.select_related("tenant").filter(pk=action_id).first()
    actor = get_user_model().objects.filter(pk=actor_id).first()
    if action is None:
        return None
    if action.status == Status.UNDONE:
        return Status.UNDONE
    try:
        if actor is None:
            raise ActionError("The person who asked for the undo no longer exists.")
        return undo_action(action, actor=actor, comment=comment).status
    except TransientConnectorError as exc:
        reason = str(exc) or exc.__class__.__name__
        if attempt >= max_attempts():
            record_undo_failure(action_id, actor_id, f"Gave up after {attempt} attempts: {reason}")
        else:
            with transaction.atomic():
                enqueue_on_commit(
                    UNDO_TASK, action_id, actor_id, comment, attempt + 1, countdown=retry_delay(attempt)
                )
        return action.status
    except (ActionError, ConnectorError) as exc:
        current = RemediationAction.objects.values_list("status", flat=True).get(pk=action_id)
        if current != Status.UNDONE:
            record_undo_failure(action_id, actor_id, str(exc))
        return current


def record_undo_failure(action_id: int, actor_id: int | None, reason: str) -> None:
    """Audit that a requested undo could not be carried out (the action stays Completed), with the reason."""
    action = (
        RemediationAction.objects.select_related("tenant", "investigation__mailbox")
        .filter(pk=action_id)
        .first()
    )
    if action is None:
        return
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    with transaction.atomic():
        record_audit(
            "investigations.action.undo_failed",
            target=action,
            actor=actor,
            actor_label=SYSTEM_ACTOR,
            comment=reason,
        )
        _publish_action("action.updated", action, undo_failed=reason[:500])
