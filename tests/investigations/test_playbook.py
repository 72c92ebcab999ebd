"""The compromised-user playbook: what each analyzer finds and proposes, the verdict and its score, failure
isolation, re-run idempotence, read cost, and the simulator's four attacks end to end (ingest → detectors →
alerts → investigation)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from investigations import analyzers, playbook
from investigations.models import AnalyzerRun, Finding, Investigation, MailCluster, RemediationAction
from investigations.services import start_investigation_by_hand
from mailflow.ingest import ingest_events
from mailflow.simulator import Scenario, SimulationConfig, simulate
from restricted_users.services import next_utc_midnight, restrict_user

from .builders import (
    ALICE,
    BOB,
    HOME,
    NOW,
    OUTSIDE,
    days_ago,
    hours_ago,
    investigation_of,
    mailbox,
    proposals,
)

pytestmark = pytest.mark.django_db
S = Investigation.Status
PHISH_URL = "https://login-verify.example/auth"


@pytest.fixture
def start(operator, run_on_commit):
    """Start an investigation on a user by hand and let it run, as a committed request would."""

    def start_(address: str = ALICE, *, failing: tuple[str, ...] = ()) -> Investigation:
        with run_on_commit():
            investigation = start_investigation_by_hand(mailbox(address), actor=operator)
        investigation.refresh_from_db()
        assert investigation.failed_analyzers == list(failing)
        return investigation

    return start_


def phish_burst(telemetry, *, internal: int, copies: int = 12, at=None) -> list[str]:
    """Copies of one lure with a per-recipient token in the URL (one campaign all the same)."""
    at = at or hours_ago(3)
    return [
        telemetry.message(
            ALICE,
            at=at + timedelta(minutes=n),
            external=3,
            internal=internal,
            verdict="phish",
            subject=f"Action required: mailbox quota {n}",
            urls=[f"{PHISH_URL}?token={n}"],
            body_hash="lure-1",
        )  # fmt: skip
        for n in range(copies)
    ]


def phished_alice(telemetry, *, internal: int) -> list[str]:
    """Alice, an ordinary user (her mailbox, her everyday mail) who then sent a phish burst; not ingested."""
    telemetry.mailbox(ALICE)
    telemetry.everyday(ALICE)
    return phish_burst(telemetry, internal=internal)


# ------------------------------------------------------------------------------------------------ analyzers


def test_a_phish_campaign_is_one_malicious_cluster_with_a_soft_delete_for_its_internal_recipients(
    telemetry, start
):
    ids = phished_alice(telemetry, internal=2)
    telemetry.ingest()
    investigation = start()

    cluster = investigation.clusters.get(verdict="malicious")
    assert (cluster.basis, cluster.label) == ("url", "login-verify.example/auth")
    assert cluster.message_count == 12 and sorted(cluster.event_ids) == sorted(ids)
    assert (cluster.internal_recipients, cluster.external_recipients) == (24, 36)
    assert cluster.verdict_counts == {"phish": 12}
    soft_delete = investigation.actions.get(action_type="soft_delete_messages")
    # 12 messages to the same two colleagues: 24 copies in 2 mailboxes, and the label says which is which.
    assert (soft_delete.target["internal_copies"], soft_delete.target["internal_mailboxes"]) == (24, 2)
    assert soft_delete.target_label.endswith(": 24 copies in 2 internal mailboxes")
    assert sorted(soft_delete.target["event_ids"]) == sorted(ids)
    assert soft_delete.finding.entity_type == "mail_cluster" and soft_delete.finding.verdict == "malicious"
    sent = investigation.findings.get(analyzer="sent_malware", entity_key="phish")
    assert sent.verdict == "malicious" and sent.data["messages"] == 12
    # The everyday mail is in clean clusters; nothing of it is proposed for deletion.
    assert investigation.clusters.filter(verdict="clean").exists()
    assert investigation.actions.filter(action_type="soft_delete_messages").count() == 1


def test_a_phish_campaign_sent_only_outside_proposes_no_soft_delete(telemetry, start):
    phished_alice(telemetry, internal=0)
    telemetry.ingest()
    investigation = start()
    assert investigation.clusters.get(verdict="malicious").internal_recipients == 0
    assert "soft_delete_messages" not in proposals(investigation)


def test_a_cluster_grouped_only_by_subject_soft_deletes_just_its_verdicted_messages(telemetry, start):
    telemetry.mailbox(ALICE)
    clean = [
        telemetry.message(ALICE, at=hours_ago(10 + n), internal=2, subject=f"Invoice {n}") for n in range(3)
    ]
    lure = telemetry.message(ALICE, at=hours_ago(2), internal=4, subject="RE: Invoice 9912", verdict="phish")
    telemetry.ingest()
    investigation = start()
    cluster = investigation.clusters.get(verdict="malicious")
    assert cluster.basis == "subject" and sorted(cluster.event_ids) == sorted([*clean, lure])
    soft_delete = investigation.actions.get(action_type="soft_delete_messages")
    assert soft_delete.target["event_ids"] == [lure] and soft_delete.target["internal_copies"] == 4
    assert soft_delete.target["internal_mailboxes"] == 4


def test_mail_is_clustered_by_url_then_body_then_normalised_subject(telemetry, start):
    telemetry.mailbox(ALICE)
    for n, subject in enumerate(["Invoice 1001", "RE: Invoice 1002", "Fwd: invoice 1003"]):
        telemetry.message(ALICE, at=hours_ago(5 + n), internal=1, subject=subject)
    for n in range(2):
        telemetry.message(ALICE, at=hours_ago(9 + n), internal=1, subject=f"Hello {n}", body_hash="same-body")
    telemetry.message(ALICE, at=hours_ago(12), internal=1, subject="Invoice 77",
                      urls=[f"https://{HOME}/logo.png", "https://www.partner.example/docs/?x=1"])  # fmt: skip
    telemetry.ingest()
    investigation = start()
    clusters = {(c.basis, c.message_count) for c in investigation.clusters.all()}
    assert clusters == {("subject", 3), ("body", 2), ("url", 1)}
    assert investigation.clusters.get(basis="url").label == "partner.example/docs"


def test_a_spam_run_is_a_suspicious_cluster_and_a_stray_bulk_mail_is_not(telemetry, start):
    telemetry.mailbox(ALICE)
    telemetry.everyday(ALICE)
    for n in range(12):
        telemetry.message(ALICE, at=hours_ago(8) + timedelta(minutes=20 * n), external=4, verdict="spam",
                          subject="Crypto bonus", urls=["https://crypto-bonus.example/?ref=1"])  # fmt: skip
    telemetry.message(ALICE, at=hours_ago(30), internal=1, verdict="bulk", subject="Weekly digest")
    telemetry.ingest()
    investigation = start()
    suspicious = investigation.clusters.filter(verdict="suspicious")
    assert [c.label for c in suspicious] == ["crypto-bonus.example"]
    assert investigation.clusters.get(label="Weekly digest").verdict == "clean"
    assert investigation.findings.get(analyzer="sent_malware", entity_key="spam").verdict == "suspicious"


def test_the_clusters_behind_a_sending_limit_breach_are_suspicious(telemetry, run_on_commit):
    telemetry.mailbox(ALICE)
    telemetry.everyday(ALICE)
    telemetry.ingest()
    for n in range(6):  # 600 external recipients in 30 minutes, verdict clean: over the hourly limit
        telemetry.message(ALICE, at=hours_ago(2) + timedelta(minutes=5 * n), external=100,
                          subject="Spring offer", urls=["https://offers.example/spring"])  # fmt: skip
    with run_on_commit():
        telemetry.ingest_and_detect()
    investigation = investigation_of(ALICE)
    assert investigation.alerts.filter(title="Email sending limit exceeded").exists()
    cluster = investigation.clusters.get(label="offers.example/spring")
    assert cluster.verdict == "suspicious" and cluster.breach_recipients == 600
    assert any("exceeded the sending limit" in reason for reason in cluster.reasons)
    assert not investigation.clusters.filter(verdict="suspicious").exclude(pk=cluster.pk).exists()


def test_a_hiding_rule_on_finance_words_is_malicious_and_a_filing_rule_is_not(telemetry, start):
    telemetry.mailbox(ALICE)
    telemetry.rule(
        ALICE,
        "r-hide",
        at=hours_ago(4),
        name="..",
        conditions={"subject_contains": ["invoice"]},
        actions={"move_to_folder": "RSS Feeds"},
    )
    telemetry.rule(
        ALICE,
        "r-news",
        at=days_ago(3),
        name="Newsletters",
        conditions={"from": "news@vendor.example"},
        actions={"move_to_folder": "Newsletters"},
    )
    telemetry.rule(ALICE, "r-out", at=hours_ago(4), name="fw",
                   conditions={}, actions={"redirect_to": f"x@{OUTSIDE}"}, enabled=False)  # fmt: skip
    telemetry.ingest()
    investigation = start()
    rules = {f.entity_key: f for f in investigation.findings.filter(analyzer="inbox_rules")}
    assert set(rules) == {"r-hide", "r-out"}
    assert rules["r-hide"].verdict == "malicious" and "invoice" in rules["r-hide"].reasons[0]
    assert rules["r-out"].verdict == "malicious" and "(disabled)" in rules["r-out"].reasons[0]
    targets = {t["rule_id"] for t in proposals(investigation)["remove_inbox_rule"]}
    assert targets == {"r-hide", "r-out"}


def test_a_recent_full_access_grant_is_proposed_for_removal_but_send_on_behalf_is_not(telemetry, start):
    telemetry.mailbox(ALICE)
    telemetry.mailbox(BOB)
    telemetry.delegation(ALICE, BOB, at=hours_ago(5), access="full_access")
    telemetry.delegation(ALICE, BOB, at=hours_ago(5), access="send_on_behalf")
    telemetry.delegation(ALICE, f"x@{OUTSIDE}", at=days_ago(20), access="send_as")  # long-standing
    telemetry.ingest()
    investigation = start()
    [finding] = investigation.findings.filter(analyzer="delegations")
    assert (finding.entity_key, finding.verdict) == (f"{BOB}:full_access", "suspicious")
    assert proposals(investigation)["remove_delegation"] == [
        {"mailbox_id": mailbox(ALICE).pk, "delegate": BOB, "access": "full_access"}
    ]


def test_sign_ins_from_a_new_country_over_imap_after_failures_are_malicious(telemetry, start):
    telemetry.mailbox(ALICE)
    for day in range(20, 0, -1):
        telemetry.sign_in(ALICE, at=days_ago(day, 8), ip="198.51.100.7", country="GB")
    for n in range(3):
        telemetry.sign_in(ALICE, at=hours_ago(6) + timedelta(minutes=n), ip="203.0.113.66", country="BR",
                          result="failure")  # fmt: skip
    telemetry.sign_in(ALICE, at=hours_ago(6) + timedelta(minutes=5), ip="203.0.113.66", country="BR")
    telemetry.sign_in(ALICE, at=hours_ago(5), ip="203.0.113.66", country="BR", client_app="imap")
    telemetry.sign_in(ALICE, at=hours_ago(1), ip="198.51.100.7", country="GB")  # the user, back at work
    telemetry.ingest()
    investigation = start()
    [finding] = investigation.findings.filter(analyzer="sign_ins")
    assert finding.entity_key == "ip:203.0.113.66" and finding.verdict == "malicious"
    assert set(finding.data["rules"]) == {
        "new_country", "legacy_protocol", "failures_then_success", "impossible_travel",
    }  # fmt: skip
    assert sum(r["points"] for r in finding.data["risk"]) == 35  # capped per IP


def test_external_forwarding_set_and_removed_is_history_without_a_proposal(telemetry, start):
    telemetry.mailbox(ALICE)
    telemetry.forwarding(ALICE, f"drop@{OUTSIDE}", at=hours_ago(8))
    telemetry.forwarding(ALICE, None, at=hours_ago(7))
    telemetry.ingest()
    investigation = start()
    finding = investigation.findings.get(analyzer="forwarding")
    assert finding.verdict == "suspicious" and finding.data["present"] is False
    assert "turn_off_forwarding" not in proposals(investigation)


def test_a_compromised_verdict_proposes_the_account_actions_and_every_point_names_its_reason(
    telemetry, start
):
    phished_alice(telemetry, internal=1)
    telemetry.forwarding(ALICE, f"drop@{OUTSIDE}", at=hours_ago(2))
    telemetry.ingest()
    investigation = start()
    assert investigation.verdict == Investigation.Verdict.COMPROMISED
    assert investigation.status == S.PENDING_ACTION
    assert investigation.risk_score >= 60
    assert sum(r["points"] for r in investigation.risk_reasons) == investigation.risk_score
    assert all(r["reason"] and r["analyzer"] in analyzers.ANALYZERS and r["points"] > 0
               for r in investigation.risk_reasons)  # fmt: skip
    found = proposals(investigation)
    for action_type in ("force_password_reset", "revoke_sessions", "disable_account", "block_sender"):
        assert found[action_type] == [{"mailbox_id": mailbox(ALICE).pk, "address": ALICE}], action_type
    verdict = investigation.findings.get(analyzer="verdict")
    assert verdict.entity_type == "mailbox" and verdict.verdict == "malicious"
    assert set(
        investigation.actions.filter(action_type="block_sender").values_list("finding", flat=True)
    ) == {verdict.pk}
    assert all(action.finding_id for action in investigation.actions.all())


def test_block_sender_is_not_proposed_when_the_user_is_already_blocked_until_released(telemetry, start):
    telemetry.mailbox(ALICE)
    phish_burst(telemetry, internal=1)
    telemetry.forwarding(ALICE, f"drop@{OUTSIDE}", at=hours_ago(2))
    telemetry.ingest()
    restrict_user(mailbox(ALICE), policy_name="Manual restriction", reason={"text": "x"}, expires_at=None,
                  source="manual", actor_label="ada")  # fmt: skip
    investigation = start()
    assert investigation.verdict == Investigation.Verdict.COMPROMISED
    assert "block_sender" not in proposals(investigation)
    assert "force_password_reset" in proposals(investigation)


def test_a_restriction_that_lapses_at_midnight_does_not_stand_in_for_block_sender(telemetry, start):
    telemetry.mailbox(ALICE)
    phish_burst(telemetry, internal=1)
    telemetry.forwarding(ALICE, f"drop@{OUTSIDE}", at=hours_ago(2))
    telemetry.ingest()
    restrict_user(mailbox(ALICE), policy_name="Email sending limit exceeded", reason={}, source="policy",
                  expires_at=next_utc_midnight(NOW), actor_label="policy")  # fmt: skip
    investigation = start()
    assert "block_sender" in proposals(investigation)


@pytest.fixture
def alice_forwarding_outside(telemetry) -> None:
    """Alice, whose mail has been forwarded outside since two hours ago (ingested)."""
    telemetry.mailbox(ALICE)
    telemetry.forwarding(ALICE, f"drop@{OUTSIDE}", at=hours_ago(2))
    telemetry.ingest()


# ------------------------------------------------------------------------------------------------ the run


def test_one_failing_analyzer_is_flagged_and_the_others_still_run(
    alice_forwarding_outside, start, monkeypatch
):

    def broken(ctx):
        ctx.record("inbox_rules", "inbox_rule", "half-written", label="x", verdict="malicious", reasons=["x"])
        raise KeyError("actions")

    monkeypatch.setattr(analyzers, "inbox_rules", broken)
    investigation = start(failing=("inbox_rules",))
    assert investigation.status == S.PENDING_ACTION  # not Failed
    assert investigation.failed_analyzers == ["inbox_rules"]
    runs = {run.analyzer: run for run in investigation.runs.all()}
    assert list(runs) == list(analyzers.ANALYZERS)
    assert runs["inbox_rules"].outcome == "failed" and "KeyError" in runs["inbox_rules"].error
    assert all(run.outcome == "ok" for name, run in runs.items() if name != "inbox_rules")
    # Its savepoint was rolled back: the half-written finding is gone; the others' findings stand.
    assert not investigation.findings.filter(entity_key="half-written").exists()
    assert investigation.findings.filter(analyzer="forwarding", verdict="malicious").exists()


def test_every_run_is_logged_analyzer_by_analyzer(telemetry, start):
    telemetry.mailbox(ALICE)
    telemetry.everyday(ALICE)
    telemetry.ingest()
    investigation = start()
    runs = list(investigation.runs.order_by("id"))
    assert [r.analyzer for r in runs] == list(analyzers.ANALYZERS)
    assert all(r.run_number == 1 and r.outcome == "ok" and r.summary and r.started_at for r in runs)
    assert runs[2].summary == "24 messages sent in 7 days: 24 clean"  # the 4 a day of the last 6 days
    assert investigation.started_at is not None and investigation.ended_at >= investigation.started_at


def test_a_rerun_updates_findings_and_actions_instead_of_duplicating_them(telemetry, start):
    phished_alice(telemetry, internal=2)
    telemetry.forwarding(ALICE, f"drop@{OUTSIDE}", at=hours_ago(2))
    telemetry.rule(ALICE, "r-hide", at=hours_ago(4), conditions={"subject_contains": ["payment"]},
                   actions={"delete": True})  # fmt: skip
    telemetry.ingest()
    investigation = start()
    before = (
        sorted(investigation.findings.values_list("entity_type", "entity_key", "verdict")),
        sorted(investigation.actions.values_list("action_type", "target_key", "status")),
        investigation.clusters.count(),
        investigation.risk_score,
    )
    assert playbook.run_investigation(investigation.pk) is not None
    investigation.refresh_from_db()
    after = (
        sorted(investigation.findings.values_list("entity_type", "entity_key", "verdict")),
        sorted(investigation.actions.values_list("action_type", "target_key", "status")),
        investigation.clusters.count(),
        investigation.risk_score,
    )
    assert after == before
    assert investigation.run_count == 2
    assert AnalyzerRun.objects.filter(investigation=investigation, run_number=2).count() == len(
        analyzers.ANALYZERS
    )


def test_a_rerun_proposes_again_for_a_threat_still_present_whatever_became_of_the_old_action(
    alice_forwarding_outside, start, operator
):
    investigation = start()
    action = investigation.actions.get(action_type="turn_off_forwarding")
    RemediationAction.objects.filter(pk=action.pk).update(
        status="rejected", decided_by=operator, decision_comment="the user's own holiday forwarding"
    )
    playbook.run_investigation(investigation.pk)
    investigation.refresh_from_db()
    # The forwarding is still there: a new proposal; the rejected one stays as it was decided.
    assert list(investigation.actions.order_by("pk").values_list("action_type", "status")) == [
        ("turn_off_forwarding", "rejected"),
        ("turn_off_forwarding", "pending"),
    ]
    assert investigation.status == S.PENDING_ACTION


def test_a_rerun_does_not_propose_again_what_was_done_while_the_threat_is_gone(
    alice_forwarding_outside, start, operator
):
    investigation = start()
    account_actions = investigation.actions.exclude(action_type="turn_off_forwarding")
    account_actions.update(status="completed", prior_state={})
    proposed = investigation.actions.count()
    playbook.run_investigation(investigation.pk)
    # Account actions completed: not proposed again; the forwarding is still there: still one open proposal.
    assert investigation.actions.count() == proposed
    assert investigation.actions.filter(action_type="turn_off_forwarding", status="pending").count() == 1


def test_a_run_is_skipped_while_another_holds_a_live_lease_and_taken_over_after(telemetry, start):
    telemetry.mailbox(ALICE)
    telemetry.ingest()
    investigation = start()
    Investigation.objects.filter(pk=investigation.pk).update(status=S.RUNNING, running_since=NOW)
    assert playbook.run_investigation(investigation.pk) is None
    Investigation.objects.filter(pk=investigation.pk).update(running_since=NOW - playbook.RUN_LEASE * 2)
    assert playbook.run_investigation(investigation.pk) is not None
    investigation.refresh_from_db()
    assert investigation.status == S.NO_THREATS and investigation.run_count == 2


def test_a_database_outage_hands_the_run_back_for_a_retry_instead_of_failing_it(
    alice_forwarding_outside, start, monkeypatch
):
    investigation = start()

    def outage(ctx):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(analyzers, "forwarding", outage)
    with pytest.raises(OperationalError):  # the task's autoretry takes it from here
        playbook.run_investigation(investigation.pk)
    investigation.refresh_from_db()
    assert (investigation.status, investigation.running_since) == (S.QUEUED, None)
    assert not investigation.runs.filter(run_number=2).exists()  # the half-done run left nothing behind
    monkeypatch.undo()
    playbook.run_investigation(investigation.pk)
    investigation.refresh_from_db()
    assert investigation.status == S.PENDING_ACTION and investigation.run_count == 3


def test_beat_requeues_a_run_whose_worker_died(alice_forwarding_outside, start):
    investigation = start()
    Investigation.objects.filter(pk=investigation.pk).update(
        status=S.RUNNING, running_since=NOW - playbook.RUN_LEASE - timedelta(minutes=1)
    )
    assert playbook.requeue_stalled_runs() == 1  # tasks run in-process here: the run happens now
    investigation.refresh_from_db()
    assert investigation.status == S.PENDING_ACTION and investigation.run_count == 2
    assert playbook.requeue_stalled_runs() == 0


def test_the_cost_of_a_run_does_not_grow_with_the_mail_volume(telemetry, start):
    """A handful of queries per analyzer: 3× the mail, the same number of queries."""
    phished_alice(telemetry, internal=1)
    telemetry.ingest()
    investigation = start()

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            playbook.run_investigation(investigation.pk)
        return len(captured)

    first = queries()
    for day in range(1, 7):
        for n in range(60):
            telemetry.message(ALICE, at=days_ago(day, 9) + timedelta(minutes=n), internal=3, external=1,
                              subject=f"Status {n % 20}")  # fmt: skip
    telemetry.ingest()
    queries()  # the new clean clusters are created once
    assert queries() == first
    assert first < 120


# ------------------------------------------------------------------------------------------------ simulator


def test_each_simulated_attack_is_investigated_with_the_right_findings_and_proposals(
    tenant, clock, run_on_commit, operator
):
    simulation = simulate(SimulationConfig(end=NOW, mailboxes=30, days=8, compromised=4, seed=1))
    with run_on_commit():
        for i in range(0, len(simulation.events), 5000):
            result = ingest_events(tenant, simulation.events[i : i + 5000], source="simulator")
            assert result.ok, result.summary()  # on commit: alerts.evaluate → alerts → investigations
    truth = {c.scenario: c for c in simulation.ground_truth.compromised}
    assert set(truth) == set(Scenario)
    # Every compromised user has one investigation; nobody else has one.
    investigated = set(Investigation.objects.values_list("mailbox__address", flat=True))
    assert investigated == {c.address for c in truth.values()}

    phish = investigation_of(truth[Scenario.OUTBOUND_PHISH].address)
    assert (phish.status, phish.verdict) == (S.PENDING_ACTION, "compromised")
    [lure] = phish.clusters.filter(verdict="malicious")
    assert lure.message_count == truth[Scenario.OUTBOUND_PHISH].details["messages"]
    assert lure.internal_recipients == 0  # the simulated lure went outside only ...
    found = proposals(phish)
    assert "soft_delete_messages" not in found  # ... so there is nothing to delete here
    assert {"block_sender", "force_password_reset", "revoke_sessions"} <= set(found)

    spam = investigation_of(truth[Scenario.SLOW_SPAM].address)
    [run] = spam.clusters.filter(verdict="suspicious")
    assert run.verdict_counts == {"spam": run.message_count} and run.breach_recipients > 1000
    assert spam.findings.get(analyzer="sending_anomaly").verdict == "suspicious"
    assert spam.status == S.PENDING_ACTION and "force_password_reset" in proposals(spam)

    bec = investigation_of(truth[Scenario.BEC_FORWARDING].address)
    details = truth[Scenario.BEC_FORWARDING].details
    found = proposals(bec)
    assert found["remove_inbox_rule"] == [{"mailbox_id": bec.mailbox_id, "rule_id": details["rule_id"],
                                           "name": details["rule_name"]}]  # fmt: skip
    assert found["turn_off_forwarding"][0]["forward_to"] == details["forward_to"]
    assert bec.verdict == "compromised" and bec.status == S.PENDING_ACTION

    delegation = investigation_of(truth[Scenario.DELEGATION_IMAP].address)
    details = truth[Scenario.DELEGATION_IMAP].details
    assert proposals(delegation)["remove_delegation"] == [
        {"mailbox_id": delegation.mailbox_id, "delegate": details["delegate"], "access": "full_access"}
    ]
    attacker = delegation.findings.get(entity_key=f"ip:{truth[Scenario.DELEGATION_IMAP].attacker_ip}")
    assert "legacy_protocol" in attacker.data["rules"]
    # Only the attacker's IP is a sign-in finding, not the user's own.
    assert delegation.findings.filter(analyzer="sign_ins").count() == 1

    # A clean user, started by hand, ends "No threats found".
    newsletter = simulation.ground_truth.newsletter_owner
    clean = next(m.address for m in simulation.mailboxes if m.address not in investigated | {newsletter})
    with run_on_commit():
        investigation = start_investigation_by_hand(mailbox(clean), actor=operator)
    investigation.refresh_from_db()
    assert (investigation.status, investigation.verdict, investigation.risk_score) == (
        S.NO_THREATS,
        "clean",
        0,
    )
    assert not MailCluster.objects.filter(investigation=investigation).exclude(verdict="clean").exists()
    assert not Finding.objects.filter(investigation=investigation).exclude(verdict="clean").exists()
