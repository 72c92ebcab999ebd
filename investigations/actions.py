"""Remediation actions: decisions, execution through the tenant's connector, manual steps, undo, and the beat
housekeeping (lease reaper, expiry). DESIGN section 6.

The action state table, as enforced here:

- Pending → Approved | Rejected (with a comment) — :func:`decide_actions`, operators only;
  Pending → Expired once ``expires_at`` has passed — :func:`expire_pending_actions` (beat).
- Approved → Running — :func:`run_approved_action` claims it with a conditional update that starts a lease
  (``running_since``); only one worker wins, so two approvals or two deliveries execute once.
- Running → Completed | Manual step required | Failed (a permanent error, or a transient one still failing
  after ``ACTION_MAX_ATTEMPTS``); a transient error puts it back to Approved with a backoff; a Running whose
  lease has expired (its worker died) is put back to Approved by :func:`reap_expired_leases` (beat).
- Manual step required → Completed | Failed — :func:`mark_manual_action`, operators only.
- Completed → Undone — :func:`undo_action` for reversible types (``RemediationAction.REVERSIBLE``), operators
  only; ``block_sender`` is reversed only by the Restricted Users release flow.

Invariants: every change is audited in its own transaction and followed by ``recompute_status`` of the
investigation; an investigation that becomes Remediated resolves its open alerts. Locks are always taken in
the same order — the mailbox row (when the change touches the directory), the investigation row, then its
action rows by id — so one action of an investigation executes at a time and concurrent decisions, runs and
executions cannot deadlock. Tasks are enqueued on commit, by name.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from alerts.models import Alert
from alerts.services import reopen_alert, resolve_alert, resolved_by_label
from core.exceptions import DomainError
from core.services import SYSTEM_ACTOR, publish_change, record_audit
from mailboxes.models import Mailbox
from restricted_users.models import Restriction
from restricted_users.services import restrict_user

from .connectors import ConnectorError, ConnectorNotConfigured, TransientConnectorError, connector_for
from .exceptions import InvestigationError, InvestigationPermissionError
from .models import ACTION_EXPIRY, Investigation, RemediationAction
from .status import recompute_status

logger = logging.getLogger(__name__)

Status = RemediationAction.Status
Type = RemediationAction.Type

DECIDE_PERMISSION = "investigations.decide_action"
STOP_PERMISSION = "investigations.stop_investigation"
# Open actions a stop withdraws. A Running action is already being carried out by a worker: it finishes
# (Completed / Failed) and says so, rather than showing Rejected for a change that was in fact made.
STOP_REJECTS = (Status.PENDING, Status.APPROVED, Status.MANUAL)
UNDO_PERMISSION = "investigations.undo_action"
EXECUTE_TASK = "investigations.execute_action"
UNDO_TASK = "investigations.undo_action"
# Who the audit trail names for what the workers and beat do on their own.
ALERT_RESOLVER = "investigation"
# The most actions one bulk decision may take.
BULK_LIMIT = 500


class ActionError(DomainError):
    """A decision or change that cannot be made as asked; the message says why (safe to show)."""


class ActionPermissionError(ActionError):
    """The person may not make this change (their role lacks the permission)."""


# ------------------------------------------------------------------------------------------------ settings


def lease() -> timedelta:
    """How long a worker may hold a Running action before the reaper assumes it died."""
    return timedelta(seconds=getattr(settings, "ACTION_LEASE_SECONDS", 300))


def max_attempts() -> int:
    return getattr(settings, "ACTION_MAX_ATTEMPTS", 5)


def retry_delay(attempt: int) -> int:
    """Seconds before attempt ``attempt + 1``: exponential, kept well inside the lease."""
    base = getattr(settings, "ACTION_RETRY_BACKOFF_SECONDS", 10)
    return int(min(base * 2 ** max(attempt - 1, 0), lease().total_seconds() / 2))


# ------------------------------------------------------------------------------------------------ helpers


def _require(actor: AbstractBaseUser | None, permission: str, message: str) -> None:
    if actor is None or not actor.is_authenticated or not actor.has_perm(permission):
        raise ActionPermissionError(message)


def _snapshot(action: RemediationAction) -> dict[str, Any]:
    """What an audit row records before / after a change of an action."""
    return {"status": action.status, "result": action.result, "attempts": action.attempts}


def _enqueue(task: str, args: tuple, countdown: int | None = None) -> None:
    """Send a task by name once the current transaction commits (never for a rolled-back change)."""
    transaction.on_commit(lambda: current_app.signature(task, args=args).apply_async(countdown=countdown))


def _lock_investigations(
    investigation_ids: Iterable[int], *, skip_locked: bool = False
) -> list[Investigation]:
    """Lock the investigations' mailboxes, then the investigations (by id): the project's lock order. Inside
    ``transaction.atomic``. With ``skip_locked``, rows another process holds are left out."""
    ids = sorted(set(investigation_ids))
    mailbox_ids = sorted(set(Investigation.objects.filter(pk__in=ids).values_list("mailbox_id", flat=True)))
    held = set(
        Mailbox.objects.select_for_update(skip_locked=skip_locked)
        .filter(pk__in=mailbox_ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return list(
        Investigation.objects.select_for_update(skip_locked=skip_locked)
        .filter(pk__in=ids, mailbox_id__in=held)
        .order_by("pk")
    )


def _lock_action(
    action_id: int, *, skip_locked: bool = False
) -> tuple[Investigation, RemediationAction] | None:
    """Lock the action's mailbox, its investigation, then the action: the project's lock order (the playbook
    and the restriction services also lock the mailbox before the rows that hang from it). Inside
    ``transaction.atomic``.

    With ``skip_locked``, None when another process holds one of the rows (a worker executing it).
    """
    ids = (
        RemediationAction.objects.filter(pk=action_id)
        .values_list("investigation_id", "investigation__mailbox_id")
        .first()
    )
    if ids is None:
        return None
    investigation_id, mailbox_id = ids
    locked_mailbox = Mailbox.objects.select_for_update(skip_locked=skip_locked).filter(pk=mailbox_id)
    if not list(locked_mailbox.values_list("pk", flat=True)):
        return None
    investigation = (
        Investigation.objects.select_for_update(skip_locked=skip_locked).filter(pk=investigation_id).first()
    )
    if investigation is None:
        return None
    action = (
        RemediationAction.objects.select_for_update(skip_locked=skip_locked, of=("self",))
        .select_related("tenant", "investigation__mailbox")
        .filter(pk=action_id)
        .first()
    )
    if action is None:
        return None
    return investigation, action


def settle_investigation(investigation: Investigation) -> str:
    """Re-derive the investigation's status (its row locked by the caller, after its mailbox); audit a
    change, and when it becomes Remediated resolve its open alerts (true positive: compromised when the
    verdict says so, else other). Every action change ends with it."""
    before = investigation.status
    status = recompute_status(investigation)
    if status != before:
        record_audit(
            "investigations.investigation.status_changed",
            target=investigation,
            actor_label=SYSTEM_ACTOR,
            before={"status": before},
            after={"status": status},
        )
        publish_change(
            "investigation.status_changed",
            target=investigation,
            payload={
                "investigation_id": investigation.pk,
                "user": investigation.mailbox.address,
                "before": before,
                "status": status,
                "verdict": investigation.verdict,
                "risk_score": investigation.risk_score,
            },
        )
        if status == Investigation.Status.REMEDIATED:
            resolve_investigation_alerts(investigation)
        elif before == Investigation.Status.REMEDIATED:
            reopen_investigation_alerts(investigation)
    return status


def resolve_investigation_alerts(investigation: Investigation) -> None:
    """Resolve a remediated investigation's open alerts as true positives (audited by resolve_alert)."""
    classification = (
        Alert.Classification.TP_COMPROMISED
        if investigation.verdict == Investigation.Verdict.COMPROMISED
        else Alert.Classification.TP_OTHER
    )
    for alert in _alerts_of(investigation).open():
        resolve_alert(
            alert,
            actor=None,
            actor_label=ALERT_RESOLVER,
            classification=classification,
            comment=f"Investigation #{investigation.pk} remediated the account.",
        )


def _alerts_of(investigation: Investigation) -> QuerySet[Alert]:
    """The investigation's alerts: those attached to it and its trigger."""
    return (
        Alert.objects.filter(Q(investigations=investigation) | Q(pk=investigation.trigger_alert_id))
        .distinct()
        .order_by("pk")
    )


def reopen_investigation_alerts(investigation: Investigation) -> None:
    """An investigation that is no longer Remediated (an action was undone, a threat came back) reopens the
    alerts its remediation had resolved; alerts a person resolved stay as they are."""
    for alert in _alerts_of(investigation).filter(status=Alert.Status.RESOLVED):
        if resolved_by_label(alert) == ALERT_RESOLVER:
            reopen_alert(
                alert,
                actor=None,
                actor_label=ALERT_RESOLVER,
                reason=f"Investigation #{investigation.pk} is no longer remediated.",
            )


def _describe(action: RemediationAction) -> str:
    return f"#{action.pk} ({action.get_action_type_display()}: {action.target_label})"


# ------------------------------------------------------------------------------------------------ decisions


def _undecidable(action: RemediationAction, now: datetime) -> str | None:
    """Why ``action`` cannot be approved or rejected now, or None."""
    if action.status == Status.EXPIRED or action.is_overdue(now):
        return (
            f"Action {_describe(action)} expired on {action.expires_at:%Y-%m-%d %H:%M} UTC and can no longer "
            "be decided."
        )
    if action.status != Status.PENDING:
        return f"Action {_describe(action)} is already {action.get_status_display().lower()}."
    return None


def decision_problems(
    actions: list[RemediationAction],
    *,
    approve: bool,
    comment: str,
    now: datetime | None = None,
    check_comment: bool = True,
) -> list[str]:
    """Everything that would make :func:`decide_actions` refuse these actions (empty: it would succeed).

    The console asks before showing its confirmation (which collects the comment: ``check_comment=False``);
    :func:`decide_actions` asks again under the row locks.
    """
    now = now or timezone.now()
    if not actions:
        return ["Choose at least one action."]
    problems: list[str] = []
    if len(actions) > BULK_LIMIT:
        problems.append(f"Decide on at most {BULK_LIMIT} actions at a time.")
    if check_comment and not approve and not comment.strip():
        problems.append("Give a comment saying why the action is rejected.")
    problems += [problem for action in actions if (problem := _undecidable(action, now))]
    return problems


def decide_actions(
    actions: RemediationAction | Iterable[RemediationAction],
    *,
    actor: AbstractBaseUser,
    approve: bool,
    comment: str = "",
) -> list[RemediationAction]:
    """Approve or reject one or several Pending actions, of any action types (the console's confirmation
    counts them by type). Operators only.

    A rejection needs a comment. The whole call is atomic: if any action is expired, already decided or gone,
    nothing is decided and the error names each one. Approved actions are sent to
    ``investigations.execute_action`` once the decision commits.
    """
    if isinstance(actions, RemediationAction):
        actions = [actions]
    ids = sorted({action.pk for action in actions})
    _require(actor, DECIDE_PERMISSION, "Only security operators may approve or reject remediation actions.")
    if not ids:
        raise ActionError("Choose at least one action.")
    if len(ids) > BULK_LIMIT:
        raise ActionError(f"Decide on at most {BULK_LIMIT} actions at a time.")
    comment = comment.strip()
    now = timezone.now()
    with transaction.atomic():
        investigations = _lock_investigations(
            RemediationAction.objects.filter(pk__in=ids).values_list("investigation_id", flat=True)
        )
        locked = list(
            RemediationAction.objects.select_for_update(of=("self",))
            .select_related("tenant", "investigation__mailbox")
            .filter(pk__in=ids)
            .order_by("pk")
        )
        missing = sorted(set(ids) - {action.pk for action in locked})
        if missing:
            raise ActionError(f"No such action: {', '.join(f'#{pk}' for pk in missing)}.")
        problems = decision_problems(locked, approve=approve, comment=comment, now=now)
        if problems:
            raise ActionError(" ".join(problems) + " Nothing was decided.")
        for action in locked:
            _decide(action, actor=actor, approve=approve, comment=comment, now=now)
        for investigation in investigations:
            settle_investigation(investigation)
    return locked


def _decide(
    action: RemediationAction, *, actor: AbstractBaseUser, approve: bool, comment: str, now: datetime
) -> None:
    """Approve or reject one locked action: the one write path of a decision (bulk decisions and stops),
    audited and published; an approval is sent to the executor on commit."""
    before = _snapshot(action)
    action.status = Status.APPROVED if approve else Status.REJECTED
    action.decided_by = actor
    action.decided_at = now
    action.decision_comment = comment
    fields = ["status", "decided_by", "decided_at", "decision_comment"]
    if approve:
        action.next_attempt_at = now
        fields.append("next_attempt_at")
    action.save(update_fields=fields)
    record_audit(
        f"investigations.action.{'approved' if approve else 'rejected'}",
        target=action,
        actor=actor,
        before=before,
        after=_snapshot(action),
        comment=comment,
    )
    _publish_action(
        "action.decided", action, decided_by=actor.get_username(), comment=comment, previous=before["status"]
    )
    if approve:
        _enqueue(EXECUTE_TASK, (action.pk,))


def _publish_action(kind: str, action: RemediationAction, **extra: Any) -> None:
    """The change-feed entry of an action change (one payload shape for every action kind)."""
    publish_change(
        kind,
        target=action,
        payload={
            "investigation_id": action.investigation_id,
            "user": action.investigation.mailbox.address,
            "action_type": action.action_type,
            "target": action.target_label,
            "status": action.status,
            **extra,
        },
    )


def stop_investigation(
    investigation: Investigation, *, actor: AbstractBaseUser, comment: str
) -> Investigation:
    """An operator stops an open investigation: its undecided actions (Pending, Approved, Manual step
    required) are rejected through the same decision path as a rejection, and the investigation ends
    "Terminated by user" (settled like any other change). A Running action is being carried out by a worker:
    it finishes and says so. Audited and published (``investigation.stopped``)."""
    if actor is None or not actor.is_authenticated or not actor.has_perm(STOP_PERMISSION):
        raise InvestigationPermissionError(
            "Only security operators and administrators may stop an investigation."
        )
    comment = comment.strip()
    if not comment:
        raise InvestigationError("Say why the investigation is stopped.")
    now = timezone.now()
    with transaction.atomic():
        locked = _lock_investigations([investigation.pk])
        if not locked:
            raise InvestigationError("This investigation no longer exists.")
        investigation = locked[0]
        if investigation.status not in Investigation.OPEN_STATUSES:
            raise InvestigationError(
                "Only an open investigation can be stopped; "
                f"this one is {investigation.get_status_display().lower()}."
            )
        before = investigation.status
        withdrawn = (
            RemediationAction.objects.select_for_update(of=("self",))
            .select_related("tenant", "investigation__mailbox")
            .filter(investigation=investigation, status__in=STOP_REJECTS)
            .order_by("pk")
        )
        for action in withdrawn:
            _decide(action, actor=actor, approve=False, comment=comment, now=now)
        investigation.stopped_by = actor
        investigation.stop_comment = comment
        investigation.ended_at = now
        investigation.running_since = None
        if investigation.status in (Investigation.Status.QUEUED, Investigation.Status.RUNNING):
            # A run in flight finds the stop and does not conclude; the status is the stop's.
            investigation.status = Investigation.Status.TERMINATED_BY_USER
        investigation.save(
            update_fields=["stopped_by", "stop_comment", "status", "ended_at", "running_since", "updated_at"]
        )
        status = settle_investigation(investigation)
        record_audit(
            "investigations.investigation.stopped",
            target=investigation,
            actor=actor,
            before={"status": before},
            after={"status": status},
            comment=comment,
        )
        publish_change(
            "investigation.stopped",
            target=investigation,
            payload={
                "investigation_id": investigation.pk,
                "user": investigation.mailbox.address,
                "before": before,
                "status": status,
                "stopped_by": actor.get_username(),
                "comment": comment,
            },
        )
    return investigation


# ------------------------------------------------------------------------------------------------ execution


@dataclass(frozen=True)
class _Outcome:
    status: str
    result: str
    prior_state: dict[str, Any] | None
    manual_step: str = ""
    calls: tuple[dict[str, Any], ...] = ()


def _block_sender(action: RemediationAction) -> _Outcome:
    """Restrict the user until released through the restriction services, whatever the connector; where the
    mail platform does not see the console's restrictions (Microsoft 365), the action then asks for the
    platform's own block as a manual step, worded by the connector (``sender_block_step``)."""
    outcome = _restrict_until_released(action)
    try:
        connector = connector_for(action.tenant)
    except ConnectorNotConfigured:
        return outcome
    step_for = getattr(connector, "sender_block_step", None)
    step = step_for(action) if step_for is not None else ""
    if not step:
        return outcome
    return _Outcome(
        Status.MANUAL,
        f"{outcome.result} The mail platform does not enforce the console's restrictions: block the sender "
        "there as well.",
        outcome.prior_state,
        step,
        calls=outcome.calls,
    )


def _restrict_until_released(action: RemediationAction) -> _Outcome:
    """Restrict the user until released through the restriction services."""
    investigation = action.investigation
    mailbox = investigation.mailbox
    active = Restriction.objects.active().for_mailbox(mailbox).first()
    if active is not None and active.expires_at is None:
        return _Outcome(
            Status.COMPLETED,
            f"Already done: {mailbox.address} is already restricted until released "
            f"(restriction #{active.pk}).",
            None,
        )
    restriction, created = restrict_user(
        mailbox,
        policy_name=f"Investigation #{investigation.pk} (block sender)",
        reason={
            "text": f"Block sender approved in investigation #{investigation.pk}",
            "investigation": investigation.pk,
            "action": action.pk,
        },
        expires_at=None,
        source=Restriction.Source.INVESTIGATION,
        actor_label=f"investigation #{investigation.pk}",
    )
    how = "restricted" if created else "restriction extended"
    return _Outcome(
        Status.COMPLETED,
        f"{mailbox.address} {how}: it cannot send mail until an administrator releases it "
        f"(restriction #{restriction.pk}).",
        {
            "restriction_id": restriction.pk,
            "previous_expiry": active.expires_at.isoformat() if active and active.expires_at else None,
        },
    )


def _perform(action: RemediationAction) -> _Outcome:
    """Read the target's state, then act unless nothing is left to do (Completed "already done")."""
    if action.action_type == Type.BLOCK_SENDER:
        return _block_sender(action)
    connector = connector_for(action.tenant)
    current = connector.read_state(action)
    if current.done:
        return _Outcome(Status.COMPLETED, f"Already done: {current.summary}.", None, calls=_calls_of(current))
    result = connector.apply(action)
    calls = _calls_of(result)
    if result.manual:
        return _Outcome(Status.MANUAL, result.message, current.state, result.manual_step, calls=calls)
    return _Outcome(Status.COMPLETED, result.message, current.state, calls=calls)


def _calls_of(outcome: Any) -> tuple[dict[str, Any], ...]:
    """The platform calls a connector reports with a result (``details["calls"]``) or an error (``calls``)."""
    details = getattr(outcome, "details", None)
    if isinstance(details, dict):
        return tuple(details.get("calls") or ())
    return tuple(getattr(outcome, "calls", None) or ())


_OUTCOME_VERBS = {
    Status.COMPLETED: "completed",
    Status.FAILED: "failed",
    Status.MANUAL: "manual_step_required",
}


def _finish(investigation: Investigation, action: RemediationAction, outcome: _Outcome) -> None:
    before = _snapshot(action)
    action.status = outcome.status
    action.result = outcome.result
    action.prior_state = outcome.prior_state
    action.manual_step = outcome.manual_step
    action.connector_calls = [*action.connector_calls, *outcome.calls]
    if outcome.status in (Status.COMPLETED, Status.FAILED):
        action.completed_at = timezone.now()
    action.save(
        update_fields=["status", "result", "prior_state", "manual_step", "completed_at", "connector_calls"]
    )
    record_audit(
        f"investigations.action.{_OUTCOME_VERBS[outcome.status]}",
        target=action,
        actor_label=SYSTEM_ACTOR,
        before=before,
        after={**_snapshot(action), "manual_step": action.manual_step}
        if action.manual_step
        else _snapshot(action),
    )
    _publish_action(
        "action.completed" if outcome.status == Status.COMPLETED else "action.updated",
        action,
        result=action.result[:500],
    )
    settle_investigation(investigation)


def _reclaim(action_id: int, claimed_at: datetime) -> tuple[Investigation, RemediationAction] | None:
    """The locked action if this worker's claim still holds (it was not reaped and claimed by another)."""
    locked = _lock_action(action_id)
    if locked is None:
        return None
    _, action = locked
    if action.status != Status.RUNNING or action.running_since != claimed_at:
        return None
    return locked


def run_approved_action(action_id: int) -> str | None:
    """Execute an Approved action once; returns its new status, or None when there was nothing to claim.

    The claim is a conditional update (Approved → Running, ``running_since`` = now, ``attempts`` + 1)
    committed on its own, so a second delivery or a second approval finds nothing to claim, and the reaper
    can see the lease. Reading the state, applying and recording the outcome then happen in one transaction
    with the investigation and action rows locked. A transient connector error is retried with backoff
    (Approved again, re-enqueued) up to ``ACTION_MAX_ATTEMPTS``; any other failure fails the action with its
    reason.
    """
    claimed_at = timezone.now()
    claimed = RemediationAction.objects.filter(pk=action_id, status=Status.APPROVED).update(
        status=Status.RUNNING, running_since=claimed_at, attempts=F("attempts") + 1, next_attempt_at=None
    )
    if claimed != 1:
        return None
    try:
        with transaction.atomic():
            locked = _reclaim(action_id, claimed_at)
            if locked is None:
                return None
            investigation, action = locked
            outcome = _perform(action)
            _finish(investigation, action, outcome)
            return action.status
    except TransientConnectorError as exc:
        return _retry_or_give_up(
            action_id, claimed_at, str(exc) or exc.__class__.__name__, calls=_calls_of(exc)
        )
    except ConnectorError as exc:
        return _fail(action_id, claimed_at, str(exc), calls=_calls_of(exc))
    except DatabaseError:
        raise  # the claim stays Running; the task retries, else the reaper returns it once the lease ends
    except Exception as exc:
        logger.exception("Remediation action %s failed unexpectedly", action_id)
        return _fail(
            action_id, claimed_at, f"Unexpected error ({exc.__class__.__name__}); see the worker log."
        )


def _fail(
    action_id: int, claimed_at: datetime, reason: str, *, calls: tuple[dict[str, Any], ...] = ()
) -> str | None:
    with transaction.atomic():
        locked = _reclaim(action_id, claimed_at)
        if locked is None:
            return None
        investigation, action = locked
        _finish(investigation, action, _Outcome(Status.FAILED, f"Failed: {reason}", None, calls=calls))
        return action.status


def _retry_or_give_up(
    action_id: int, claimed_at: datetime, reason: str, *, calls: tuple[dict[str, Any], ...] = ()
) -> str | None:
    with transaction.atomic():
        locked = _reclaim(action_id, claimed_at)
        if locked is None:
            return None
        investigation, action = locked
        if action.attempts >= max_attempts():
            outcome = _Outcome(
                Status.FAILED,
                f"Failed after {action.attempts} attempts; the last error: {reason}",
                None,
                calls=calls,
            )
            _finish(investigation, action, outcome)
            return action.status
        delay = retry_delay(action.attempts)
        before = _snapshot(action)
        action.status = Status.APPROVED
        action.running_since = None
        action.next_attempt_at = timezone.now() + timedelta(seconds=delay)
        action.result = (
            f"Attempt {action.attempts} of {max_attempts()} failed ({reason}); retrying in {delay} s."
        )
        action.connector_calls = [*action.connector_calls, *calls]
        action.save(update_fields=["status", "running_since", "next_attempt_at", "result", "connector_calls"])
        record_audit(
            "investigations.action.retry_scheduled",
            target=action,
            actor_label=SYSTEM_ACTOR,
            before=before,
            after=_snapshot(action),
        )
        _enqueue(EXECUTE_TASK, (action.pk,), countdown=delay)
        return action.status


# -------------------------------------------------------------------------------------------- manual steps


def mark_manual_action(
    action: RemediationAction, *, actor: AbstractBaseUser, done: bool, comment: str = ""
) -> RemediationAction:
    """An operator reports a "Manual step required" action as done by hand (Completed) or not (Failed, with a
    comment saying why)."""
    _require(actor, DECIDE_PERMISSION, "Only security operators may mark manual steps.")
    comment = comment.strip()
    if not done and not comment:
        raise ActionError("Give a comment saying why the manual step failed.")
    with transaction.atomic():
        locked = _lock_action(action.pk)
        if locked is None:
            raise ActionError("This action no longer exists.")
        investigation, action = locked
        if action.status != Status.MANUAL:
            raise ActionError(
                f"Action {_describe(action)} is {action.get_status_display().lower()}, "
                "not waiting for a manual step."
            )
        before = _snapshot(action)
        who = actor.get_username()
        action.status = Status.COMPLETED if done else Status.FAILED
        action.completed_at = timezone.now()
        note = f"Done by hand, reported by {who}." if done else f"Manual step failed, reported by {who}."
        action.result = "\n".join(part for part in (action.result, note, comment) if part)
        action.save(update_fields=["status", "completed_at", "result"])
        record_audit(
            f"investigations.action.manual_{'completed' if done else 'failed'}",
            target=action,
            actor=actor,
            before=before,
            after=_snapshot(action),
            comment=comment,
        )
        _publish_action(
            "action.completed" if done else "action.updated", action, manual=True, reported_by=who
        )
        settle_investigation(investigation)
    return action


# ------------------------------------------------------------------------------------------------ undo


def undo_refusal(action: RemediationAction) -> str | None:
    """Why ``action`` cannot be undone, or None when it can."""
    return action.undo_refusal()


def request_undo(action: RemediationAction, *, actor: AbstractBaseUser, comment: str) -> None:
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
        _enqueue(UNDO_TASK, (action.pk, actor.pk, comment))


def undo_action(action: RemediationAction, *, actor: AbstractBaseUser, comment: str) -> RemediationAction:
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
        locked = _lock_action(action.pk)
        if locked is None:
            raise ActionError("This action no longer exists.")
        investigation, action = locked
        if refusal := undo_refusal(action):
            raise ActionError(refusal)
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


def _propose_again(action: RemediationAction, *, now: datetime) -> RemediationAction:
    """After an undo the threat the action answered is back: propose the same clean-up again (Pending, a
    fresh 7-day clock), so the investigation reopens with something to decide. Audited as the playbook."""
    again = RemediationAction.objects.create(
        tenant=action.tenant,
        investigation=action.investigation,
        finding=action.finding,
        action_type=action.action_type,
        target=action.target,
        target_label=action.target_label,
        target_key=action.target_key,
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
                _enqueue(
                    UNDO_TASK, (action_id, actor_id, comment, attempt + 1), countdown=retry_delay(attempt)
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


# ------------------------------------------------------------------------------------------------ beat


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
            _enqueue(EXECUTE_TASK, (action.pk,))
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
                _enqueue(EXECUTE_TASK, (action_id,))
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
