"""The compromised-user playbook (DESIGN section 6): one run of the analyzers over an investigation's user.

A run:

1. **claims** the investigation (status Running, ``run_count`` + 1, ``running_since`` = now: a lease), audited
   and committed at once so the console shows it running. A run that finds the investigation Running under a
   live lease returns at once (another worker has it); a stopped investigation is never run again;
2. **analyzes** in one transaction holding the investigation's row lock (so a stop or a correlating alert
   waits for the outcome instead of interleaving with it): the analyzers of ``analyzers.ANALYZERS`` in order,
   each in its own savepoint and logged as an ``AnalyzerRun``. A failing analyzer is rolled back alone, logged
   with its error and flagged (``failed_analyzers``); the others still run;
3. **concludes** in the same transaction: the verdict and risk score (set by the verdict analyzer) and the
   status of DESIGN 6's table via :func:`investigations.status.derive_status`, audited. Every evidence
   analyzer failing makes the run Failed; so does a crash outside the analyzers (logged, recorded as a
   "playbook" entry of the log with its error, audited).

A database outage (``OperationalError``) is not a verdict on the investigation: the claim is handed back
(Queued) and the error re-raised for the task to retry. Findings and actions are upserted by entity and
target, so a re-run updates them instead of adding duplicates. A trigger that asked for a run after this one
was claimed gets another run once this one commits.
"""

from __future__ import annotations

import logging
import time
import traceback
from datetime import datetime, timedelta
from typing import Any

from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from core.queueing import enqueue
from core.services import record_audit

from . import analyzers
from .action_services import publish_status_changed, reopen_investigation_alerts, resolve_investigation_alerts
from .models import AnalyzerRun, Finding, Investigation
from .services import request_run
from .status import derive_status

logger = logging.getLogger(__name__)

# How long a claimed run may hold the investigation before another worker may take it over (a worker killed
# mid-run loses its claim; the run is redelivered or requeued by beat).
RUN_LEASE = timedelta(minutes=10)
ACTOR = "playbook"
_TRANSIENT = (OperationalError, InterfaceError)
S = Investigation.Status


def run_investigation(investigation_id: int) -> Investigation | None:
    """Run the analyzers over an investigation and conclude it. Returns None when there was nothing to run
    (unknown id, stopped, or another worker's live claim); otherwise the investigation as concluded."""
    claim = _claim(investigation_id)
    if claim is None:
        return None
    run_number, claimed_at = claim
    try:
        with transaction.atomic():
            investigation = (
                Investigation.objects.select_for_update(of=("self",))
                .select_related("tenant", "mailbox")
                .get(pk=investigation_id)
            )
            if investigation.running_since != claimed_at:
                return None  # stopped meanwhile, or our lease ran out and another worker took the run over
            ctx = analyzers.Context(investigation, now=claimed_at, run_number=run_number)
            failed = [name for name in analyzers.ANALYZERS if not _run_analyzer(ctx, name)]
            _conclude(investigation, ctx, failed)
        return investigation
    except _TRANSIENT:
        _hand_back(investigation_id, claimed_at)
        raise
    except Exception as exc:
        logger.exception("The playbook run %s of investigation %s crashed", run_number, investigation_id)
        _mark_failed(investigation_id, run_number, claimed_at, exc)
        return None


def requeue_stalled_runs(now: datetime | None = None) -> int:
    """Enqueue a run for every investigation whose run was lost: Running past its lease, or Queued for longer
    than a lease without a worker taking it (a run task dropped after its retries). Returns how many."""
    now = now or timezone.now()
    stale = now - RUN_LEASE
    ids = list(
        Investigation.objects.filter(
            Q(status=S.RUNNING, running_since__lt=stale)
            | Q(status=S.RUNNING, running_since__isnull=True)
            | Q(status=S.QUEUED, created_at__lt=stale, run_requested_at__lt=stale)
            | Q(status=S.QUEUED, created_at__lt=stale, run_requested_at__isnull=True)
        ).values_list("pk", flat=True)
    )
    for pk in ids:
        enqueue("investigations.run", pk)
    return len(ids)


def _claim(investigation_id: int) -> tuple[int, datetime] | None:
    """Mark the investigation Running under a fresh lease; None when it must not run now."""
    with transaction.atomic():
        investigation = Investigation.objects.select_for_update().filter(pk=investigation_id).first()
        if investigation is None:
            logger.warning("Investigation %s does not exist; nothing to run", investigation_id)
            return None
        now = timezone.now()  # after the lock: a run we waited for has ended by now
        if (
            investigation.status == S.TERMINATED_BY_USER
            or investigation.stopped_by_id
            or investigation.stop_comment
        ):
            return None
        if (
            investigation.status == S.RUNNING
            and investigation.running_since is not None
            and investigation.running_since > now - RUN_LEASE
        ):
            return None
        before = investigation.status
        investigation.status = S.RUNNING
        investigation.running_since = now
        investigation.run_count += 1
        investigation.started_at = investigation.started_at or now
        investigation.save(update_fields=["status", "running_since", "run_count", "started_at", "updated_at"])
        record_audit(
            "investigations.investigation.run_started",
            target=investigation,
            actor_label=ACTOR,
            before={"status": before},
            after={"status": investigation.status, "run": investigation.run_count},
        )
        return investigation.run_count, now


def _run_analyzer(ctx: analyzers.Context, name: str) -> bool:
    """Run one analyzer in its own savepoint and log it; False when it failed (its writes rolled back)."""
    analyzer = getattr(analyzers, name)
    started_at = timezone.now()
    clock = time.perf_counter()

    def log_run(**outcome: Any) -> None:
        AnalyzerRun.objects.create(
            investigation=ctx.investigation,
            run_number=ctx.run_number,
            analyzer=name,
            started_at=started_at,
            duration_ms=_elapsed_ms(clock),
            **outcome,
        )

    try:
        with transaction.atomic():
            result = analyzer(ctx)
    except _TRANSIENT:
        raise
    except Exception as exc:
        logger.exception("Analyzer %s failed on investigation %s", name, ctx.investigation.pk)
        log_run(
            outcome=AnalyzerRun.Outcome.FAILED,
            summary=f"Failed: {type(exc).__name__}: {exc}"[:500],
            error=_error_text(exc),
        )
        return False
    log_run(outcome=AnalyzerRun.Outcome.OK, findings=len(result.findings), summary=result.summary[:500])
    return True


def _conclude(investigation: Investigation, ctx: analyzers.Context, failed: list[str]) -> None:
    run_failed = all(name in failed for name in analyzers.EVIDENCE_ANALYZERS)
    status = derive_status(
        analyzers_finished=True,
        run_failed=run_failed,
        threats_found=investigation.findings.exclude(verdict=Finding.Verdict.CLEAN).exists(),
        action_statuses=investigation.actions.values_list("status", flat=True),
    )
    now = timezone.now()
    investigation.status = status
    investigation.failed_analyzers = failed
    investigation.running_since = None
    investigation.ended_at = now
    investigation.save(
        update_fields=[
            "status",
            "failed_analyzers",
            "running_since",
            "ended_at",
            "verdict",
            "risk_score",
            "risk_reasons",
            "updated_at",
        ]
    )
    record_audit(
        "investigations.investigation.failed" if run_failed else "investigations.investigation.analyzed",
        target=investigation,
        actor_label=ACTOR,
        before={"status": S.RUNNING},
        after={
            "status": status,
            "run": ctx.run_number,
            "verdict": investigation.verdict,
            "risk_score": investigation.risk_score,
            "failed_analyzers": failed,
        },
    )
    publish_status_changed(investigation, before=S.RUNNING, status=status)
    if status == S.REMEDIATED:
        # A re-run found every action already done: the alerts close as they would after the last action.
        resolve_investigation_alerts(investigation)
    else:
        # A re-run that found a threat to act on again: what its remediation had resolved reopens.
        reopen_investigation_alerts(investigation)
    requested = Investigation.objects.filter(pk=investigation.pk).values_list("run_requested_at", flat=True)[
        0
    ]
    if requested is not None and requested > ctx.until and status != S.FAILED:
        # A trigger arrived after this run was claimed: run again with what it added.
        request_run(investigation)


def _mark_failed(investigation_id: int, run_number: int, claimed_at: datetime, exc: BaseException) -> None:
    with transaction.atomic():
        investigation = Investigation.objects.select_for_update().filter(pk=investigation_id).first()
        if investigation is None or investigation.running_since != claimed_at:
            return
        now = timezone.now()
        AnalyzerRun.objects.create(
            investigation=investigation,
            run_number=run_number,
            analyzer=ACTOR,
            started_at=claimed_at,
            duration_ms=int((now - claimed_at).total_seconds() * 1000),
            outcome=AnalyzerRun.Outcome.FAILED,
            summary=f"The run crashed: {type(exc).__name__}: {exc}"[:500],
            error=_error_text(exc),
        )
        investigation.status = S.FAILED
        investigation.running_since = None
        investigation.ended_at = now
        investigation.save(update_fields=["status", "running_since", "ended_at", "updated_at"])
        record_audit(
            "investigations.investigation.failed",
            target=investigation,
            actor_label=ACTOR,
            before={"status": S.RUNNING},
            after={"status": S.FAILED, "run": run_number, "error": f"{type(exc).__name__}: {exc}"[:500]},
        )
        publish_status_changed(investigation, before=S.RUNNING, status=S.FAILED)


def _hand_back(investigation_id: int, claimed_at: datetime) -> None:
    """Give up the claim after a database error, so the task's retry (or beat) can run it again."""
    try:
        with transaction.atomic():
            Investigation.objects.filter(pk=investigation_id, running_since=claimed_at).update(
                status=S.QUEUED, running_since=None, updated_at=timezone.now()
            )
    except _TRANSIENT:
        logger.warning(
            "Could not hand back the claim on investigation %s; beat will requeue it", investigation_id
        )


def _elapsed_ms(clock: float) -> int:
    return int((time.perf_counter() - clock) * 1000)


def _error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))[-5000:]
