"""Remediation actions: decisions, execution through the tenant's connector and manual steps (DESIGN section
6); undo is in :mod:`investigations.action_undo`, the beat housekeeping (lease reaper, expiry) in
:mod:`investigations.action_beat`, and :mod:`investigations.actions` names all of them.

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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone

from alerts.models import Alert, AlertQuerySet
from alerts.services import reopen_alert, resolve_alert, resolved_by_label
from core.queueing import enqueue_on_commit
from core.services import SYSTEM_ACTOR, audit_field_change, publish_change, record_audit
from mailboxes.models import Mailbox
from restricted_users.models import Restriction
from restricted_users.services import restrict_user

from .connectors import connector_for
from .exceptions import (
    ActionError,
    ActionPermissionError,
    ConnectorError,
    ConnectorNotConfigured,
    InvestigationError,
    InvestigationPermissionError,
    TransientConnectorError,
)
from .models import Investigation, RemediationAction
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


def _require(actor: User | None, permission: str, message: str) -> None:
    if actor is None or not actor.is_authenticated or not actor.has_perm(permission):
        raise ActionPermissionError(message)


def _snapshot(action: RemediationAction) -> dict[str, Any]:
    """What an audit row records before / after a change of an action."""
    return {"status": action.status, "result": action.result, "attempts": action.attempts}


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


def publish_investigation_change(
    kind: str, investigation: Investigation, *, before: str, status: str, **extra: Any
) -> None:
    """The change-feed entry of an investigation's status change: one payload shape, plus ``extra``."""
    payload = {
        "investigation_id": investigation.pk,
        "user": investigation.mailbox.address,
        "before": before,
        "status": status,
    }
    publish_change(kind, target=investigation, payload={**payload, **extra})


def publish_status_changed(investigation: Investigation, *, before: str, status: str) -> None:
    """``investigation.status_changed``, with the verdict and risk score (the playbook's and actions')."""
    publish_investigation_change(
        "investigation.status_changed",
        investigation,
        before=before,
        status=status,
        verdict=investigation.verdict,
        risk_score=investigation.risk_score,
    )


def settle_investigation(investigation: Investigation) -> str:
    """Re-derive the investigation's status (its row locked by the caller, after its mailbox); audit a
    change, and when it becomes Remediated resolve its open alerts (true positive: compromised when the
    verdict says so, else other). Every action change ends with it."""
    before = investigation.status
    status = recompute_status(investigation)
    if status != before:
        audit_field_change(
            "investigations.investigation.status_changed",
            investigation,
            actor_label=SYSTEM_ACTOR,
            field="status",
            before=before,
            after=status,
        )
        publish_status_changed(investigation, before=before, status=status)
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


def _alerts_of(investigation: Investigation) -> AlertQuerySet:
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
    actor: User,
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


def _decide(action: RemediationAction, *, actor: User, approve: bool, comment: str, now: datetime) -> None:
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
    _audit_action("approved" if approve else "rejected", action, before=before, actor=actor, comment=comment)
    _publish_action(
        "action.decided", action, decided_by=actor.get_username(), comment=comment, previous=before["status"]
    )
    if approve:
        enqueue_on_commit(EXECUTE_TASK, action.pk)


def _audit_action(
    verb: str,
    action: RemediationAction,
    *,
    before: dict[str, Any],
    actor: User | None = None,
    comment: str = "",
    after: dict[str, Any] | None = None,
) -> None:
    """The audit row ``investigations.action.<verb>`` of an action change, by ``actor`` or the system; what
    the action is after it (its snapshot unless ``after`` says more)."""
    record_audit(
        f"investigations.action.{verb}",
        target=action,
        actor=actor,
        actor_label="" if actor is not None else SYSTEM_ACTOR,
        before=before,
        after=after if after is not None else _snapshot(action),
        comment=comment,
    )


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


def stop_investigation(investigation: Investigation, *, actor: User, comment: str) -> Investigation:
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
        publish_investigation_change(
            "investigation.stopped",
            investigation,
            before=before,
            status=status,
            stopped_by=actor.get_username(),
            comment=comment,
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


_OUTCOME_VERBS: dict[str, str] = {
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
    _audit_action(
        _OUTCOME_VERBS[outcome.status],
        action,
        before=before,
        after={**_snapshot(action), "manual_step": action.manual_step} if action.manual_step else None,
    )
    _publish_action(
        "action.completed" if outcome.status == Status.COMPLETED else "action.updated",
        action,
        result=action.result[:500],
    )
    settle_investigation(investigation)


def _lock_for_person(action_id: int) -> tuple[Investigation, RemediationAction]:
    """:func:`_lock_action` for a person's step on an action: :class:`ActionError` when it is gone."""
    locked = _lock_action(action_id)
    if locked is None:
        raise ActionError("This action no longer exists.")
    return locked


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
        reason = str(exc) or exc.__class__.__name__
        return _fail_or_retry(action_id, claimed_at, reason, retry=True, calls=_calls_of(exc))
    except ConnectorError as exc:
        return _fail_or_retry(action_id, claimed_at, str(exc), retry=False, calls=_calls_of(exc))
    except DatabaseError:
        raise  # the claim stays Running; the task retries, else the reaper returns it once the lease ends
    except Exception as exc:
        logger.exception("Remediation action %s failed unexpectedly", action_id)
        reason = f"Unexpected error ({exc.__class__.__name__}); see the worker log."
        return _fail_or_retry(action_id, claimed_at, reason, retry=False)


def _fail_or_retry(
    action_id: int,
    claimed_at: datetime,
    reason: str,
    *,
    retry: bool,
    calls: tuple[dict[str, Any], ...] = (),
) -> str | None:
    """Record a failed attempt of a claimed action: Failed at once, or with ``retry`` (a transient error)
    Approved again and re-enqueued with backoff until ``max_attempts()`` attempts have failed."""
    with transaction.atomic():
        locked = _reclaim(action_id, claimed_at)
        if locked is None:
            return None
        investigation, action = locked
        if not retry or action.attempts >= max_attempts():
            result = (
                f"Failed after {action.attempts} attempts; the last error: {reason}"
                if retry
                else f"Failed: {reason}"
            )
            _finish(investigation, action, _Outcome(Status.FAILED, result, None, calls=calls))
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
        _audit_action("retry_scheduled", action, before=before)
        enqueue_on_commit(EXECUTE_TASK, action.pk, countdown=delay)
        return action.status


# -------------------------------------------------------------------------------------------- manual steps


def mark_manual_action(
    action: RemediationAction, *, actor: User, done: bool, comment: str = ""
) -> RemediationAction:
    """An operator reports a "Manual step required" action as done by hand (Completed) or not (Failed, with a
    comment saying why)."""
    _require(actor, DECIDE_PERMISSION, "Only security operators may mark manual steps.")
    comment = comment.strip()
    if not done and not comment:
        raise ActionError("Give a comment saying why the manual step failed.")
    with transaction.atomic():
        investigation, action = _lock_for_person(action.pk)
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
        _audit_action(
            f"manual_{'completed' if done else 'failed'}", action, before=before, actor=actor, comment=comment
        )
        _publish_action(
            "action.completed" if done else "action.updated", action, manual=True, reported_by=who
        )
        settle_investigation(investigation)
    return action
