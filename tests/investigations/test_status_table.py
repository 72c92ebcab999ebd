"""DESIGN 6's investigation status table: every row against ``derive_status``, then the main rows end to end
through the playbook (a by-hand start, the analyzers, the verdict, the status it concludes)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from investigations import analyzers, playbook
from investigations.actions import stop_investigation
from investigations.models import AnalyzerRun, Investigation
from investigations.services import start_investigation_by_hand
from investigations.status import derive_status

from .builders import ALICE, OUTSIDE, hours_ago, investigation_of, mailbox, proposals

S = Investigation.Status

# (name, facts, expected status). Action statuses are the investigation's actions.
TABLE = [
    ("queued before any analyzer ran", dict(analyzers_finished=False, started=False), S.QUEUED),
    ("running while analyzers work", dict(analyzers_finished=False, started=True), S.RUNNING),
    ("running wins over threats and actions", dict(analyzers_finished=False, threats_found=True,
                                                   action_statuses=["pending"]), S.RUNNING),
    ("failed run", dict(run_failed=True), S.FAILED),
    ("failed wins over threats and actions", dict(run_failed=True, threats_found=True,
                                                  action_statuses=["completed"]), S.FAILED),
    ("no malicious or suspicious finding", dict(threats_found=False), S.NO_THREATS),
    ("threats, nothing proposed", dict(threats_found=True, action_statuses=[]), S.PARTIALLY_INVESTIGATED),
    ("pending only", dict(action_statuses=["pending", "pending"]), S.PENDING_ACTION),
    ("approved counts as open", dict(action_statuses=["approved"]), S.PENDING_ACTION),
    ("running action counts as open", dict(action_statuses=["running", "rejected"]), S.PENDING_ACTION),
    ("manual step counts as open", dict(action_statuses=["manual"]), S.PENDING_ACTION),
    ("open and some failed, none completed", dict(action_statuses=["pending", "failed"]), S.PENDING_ACTION),
    ("open and some completed", dict(action_statuses=["pending", "completed"]), S.PARTIALLY_REMEDIATED),
    ("none open, some failed", dict(action_statuses=["failed", "rejected"]), S.PARTIALLY_REMEDIATED),
    ("failed and completed", dict(action_statuses=["failed", "completed"]), S.PARTIALLY_REMEDIATED),
    ("none open, completed", dict(action_statuses=["completed", "completed"]), S.REMEDIATED),
    ("completed with rejected and expired", dict(action_statuses=["completed", "rejected", "expired"]),
     S.REMEDIATED),
    ("some expired, none done", dict(action_statuses=["expired", "rejected"]), S.TERMINATED_BY_SYSTEM),
    ("all rejected", dict(action_statuses=["rejected", "rejected"]), S.TERMINATED_BY_USER),
    ("rejected and undone", dict(action_statuses=["rejected", "undone"]), S.TERMINATED_BY_USER),
    ("all undone", dict(action_statuses=["undone"]), S.TERMINATED_BY_USER),
    ("stopped by an operator", dict(stopped=True, action_statuses=["rejected", "completed"]),
     S.TERMINATED_BY_USER),
]  # fmt: skip


@pytest.mark.parametrize(("facts", "expected"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_derive_status_follows_the_table(facts, expected):
    defaults = dict(analyzers_finished=True, run_failed=False, threats_found=True, action_statuses=[])
    assert derive_status(**{**defaults, **facts}) == expected


# ------------------------------------------------------------------------------------------------ end to end


def _start(operator, run_on_commit, address: str = ALICE) -> Investigation:
    with run_on_commit():
        investigation = start_investigation_by_hand(mailbox(address), actor=operator, comment="check")
    investigation.refresh_from_db()
    return investigation


def _start_clean_run(operator, run_on_commit, address: str = ALICE) -> Investigation:
    investigation = _start(operator, run_on_commit, address)
    assert investigation.failed_analyzers == []  # the status below is not the product of a broken analyzer
    return investigation


@pytest.mark.django_db
def test_a_clean_user_ends_no_threats_found(telemetry, operator, run_on_commit):
    telemetry.mailbox(ALICE)
    telemetry.everyday(ALICE)
    telemetry.ingest()
    investigation = _start_clean_run(operator, run_on_commit)
    assert investigation.status == S.NO_THREATS
    assert investigation.verdict == Investigation.Verdict.CLEAN
    assert investigation.risk_score == 0 and investigation.risk_reasons == []
    assert not investigation.actions.exists()


@pytest.mark.django_db
def test_a_sending_anomaly_alone_is_partially_investigated(telemetry, operator, run_on_commit):
    telemetry.mailbox(ALICE)
    telemetry.everyday(ALICE)
    for n in range(60):  # clean mail, far above the user's own days, under every sending limit
        telemetry.message(
            ALICE, at=hours_ago(6) + timedelta(minutes=3 * n), internal=5, subject=f"Team update {n}"
        )
    telemetry.ingest()
    investigation = _start_clean_run(operator, run_on_commit)
    assert investigation.status == S.PARTIALLY_INVESTIGATED
    assert investigation.verdict == Investigation.Verdict.SUSPICIOUS
    sending = investigation.findings.get(analyzer="sending_anomaly")
    assert sending.verdict == "suspicious"
    assert any("300 recipients" in reason for reason in sending.reasons)
    assert not investigation.actions.exists()


@pytest.mark.django_db
def test_external_forwarding_leaves_the_investigation_pending_action(telemetry, operator, run_on_commit):
    telemetry.mailbox(ALICE)
    telemetry.everyday(ALICE)
    telemetry.forwarding(ALICE, f"drop@{OUTSIDE}", at=hours_ago(3))
    telemetry.ingest()
    investigation = _start_clean_run(operator, run_on_commit)
    assert investigation.status == S.PENDING_ACTION
    assert proposals(investigation)["turn_off_forwarding"][0]["forward_to"] == f"drop@{OUTSIDE}"
    action = investigation.actions.get(action_type="turn_off_forwarding")
    assert action.status == "pending"
    assert action.finding.entity_type == "forwarding"
    assert action.expires_at - action.proposed_at == timedelta(days=7)


@pytest.mark.django_db
def test_stopping_rejects_open_actions_and_terminates_by_user(telemetry, operator, run_on_commit):
    telemetry.mailbox(ALICE)
    telemetry.forwarding(ALICE, f"drop@{OUTSIDE}", at=hours_ago(3))
    telemetry.ingest()
    investigation = _start_clean_run(operator, run_on_commit)
    assert investigation.status == S.PENDING_ACTION
    stop_investigation(investigation, actor=operator, comment="The user set this up for their holiday")
    investigation.refresh_from_db()
    assert investigation.status == S.TERMINATED_BY_USER
    assert investigation.stopped_by == operator
    action = investigation.actions.get()
    assert (action.status, action.decided_by, action.decision_comment) == (
        "rejected", operator, "The user set this up for their holiday",
    )  # fmt: skip
    # A run delivered after the stop leaves it alone.
    assert playbook.run_investigation(investigation.pk) is None
    investigation.refresh_from_db()
    assert investigation.status == S.TERMINATED_BY_USER and investigation.run_count == 1


@pytest.mark.django_db
def test_every_analyzer_failing_fails_the_run(telemetry, operator, run_on_commit, monkeypatch):
    telemetry.mailbox(ALICE)
    telemetry.forwarding(ALICE, f"drop@{OUTSIDE}", at=hours_ago(3))
    telemetry.ingest()

    def broken(ctx):
        raise RuntimeError("telemetry store unreachable")

    for name in analyzers.EVIDENCE_ANALYZERS:
        monkeypatch.setattr(analyzers, name, broken)
    investigation = _start(operator, run_on_commit)
    assert investigation.status == S.FAILED
    assert investigation.failed_analyzers == list(analyzers.EVIDENCE_ANALYZERS)
    runs = AnalyzerRun.objects.filter(investigation=investigation, outcome="failed")
    assert runs.count() == len(analyzers.EVIDENCE_ANALYZERS)
    assert "telemetry store unreachable" in runs.first().error
    assert not investigation.actions.exists()


@pytest.mark.django_db
def test_a_crashing_run_is_failed_with_its_error_logged(telemetry, operator, run_on_commit, monkeypatch):
    telemetry.mailbox(ALICE)
    telemetry.ingest()

    def crash(investigation, ctx, failed):
        raise ValueError("bad status input")

    monkeypatch.setattr(playbook, "_conclude", crash)
    investigation = _start(operator, run_on_commit)
    assert investigation.status == S.FAILED
    log = investigation.runs.get(analyzer="playbook")
    assert log.outcome == "failed" and "bad status input" in log.error
    # The crash rolled back the run's findings; a later run (the bug fixed) concludes normally.
    monkeypatch.undo()
    assert playbook.run_investigation(investigation.pk) is not None
    investigation.refresh_from_db()
    assert investigation.status == S.NO_THREATS and investigation.run_count == 2
    assert investigation_of(ALICE) == investigation
