"""Investigation status, decided in DESIGN 6's order from the run and the actions. One place, so the playbook,
the executors, the reaper and the operator's stop all agree."""

from __future__ import annotations

from collections.abc import Iterable

from .models import Investigation, RemediationAction

S = Investigation.Status
A = RemediationAction.Status


def derive_status(
    *,
    analyzers_finished: bool,
    run_failed: bool,
    threats_found: bool,
    action_statuses: Iterable[str],
    stopped: bool = False,
    started: bool = True,
) -> str:
    """The status the table gives for these facts (open actions = Pending, Approved, Running, Manual)."""
    statuses = list(action_statuses)
    if not analyzers_finished:
        return S.RUNNING if started else S.QUEUED
    if run_failed:
        return S.FAILED
    if stopped:
        return S.TERMINATED_BY_USER
    if not threats_found:
        return S.NO_THREATS
    if not statuses:
        return S.PARTIALLY_INVESTIGATED
    open_ = any(s in RemediationAction.OPEN_STATUSES for s in statuses)
    completed = A.COMPLETED in statuses
    failed = A.FAILED in statuses
    if open_ and not completed:
        return S.PENDING_ACTION
    if open_ and completed:
        return S.PARTIALLY_REMEDIATED
    if failed:
        return S.PARTIALLY_REMEDIATED
    if completed:
        return S.REMEDIATED
    if A.EXPIRED in statuses:
        return S.TERMINATED_BY_SYSTEM
    return S.TERMINATED_BY_USER  # none open, all Rejected or Undone


def recompute_status(investigation: Investigation) -> str:
    """Re-derive a finished investigation's status from its findings and actions, and save it if it changed.

    Call inside the transaction that changed an action. Queued / Running / Failed are set by the playbook run.
    """
    if investigation.status in (S.QUEUED, S.RUNNING, S.FAILED):
        return investigation.status
    threats = investigation.findings.exclude(verdict="clean").exists()
    status = derive_status(
        analyzers_finished=True,
        run_failed=False,
        threats_found=threats,
        action_statuses=investigation.actions.values_list("status", flat=True),
        stopped=investigation.stopped_by_id is not None or bool(investigation.stop_comment),
    )
    if status != investigation.status:
        investigation.status = status
        investigation.save(update_fields=["status", "updated_at"])
    return status
