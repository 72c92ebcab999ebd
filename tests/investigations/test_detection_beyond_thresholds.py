"""Issue 21 in the playbook: spam sent inside the tenant gets its clean-up proposed (counted in mailboxes, not
copies) and carried out by the built-in connector; a lookalike domain is a named risk point; a compromised
verdict proposes the account actions whatever the cluster verdicts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from investigations import actions
from investigations.models import RemediationAction
from investigations.services import start_investigation_by_hand

from .builders import ALICE, HOME, hours_ago, mailbox, proposals

pytestmark = pytest.mark.django_db


@pytest.fixture
def start(operator, run_on_commit):
    def start_(address: str = ALICE):
        with run_on_commit():
            investigation = start_investigation_by_hand(mailbox(address), actor=operator)
        investigation.refresh_from_db()
        return investigation

    return start_


def internal_spray(telemetry, *, copies: int = 12, verdict: str = "spam") -> list[str]:
    """The same spam to the same three colleagues, again and again: 36 copies in 3 mailboxes."""
    return [
        telemetry.message(
            ALICE,
            at=hours_ago(5) + timedelta(minutes=10 * n),
            internal=3,
            verdict=verdict,
            subject="You won a gift card",
            urls=["https://gift-cards-now.example/claim"],
        )  # fmt: skip
        for n in range(copies)
    ]


def test_a_spam_cluster_that_reached_internal_mailboxes_gets_a_soft_delete_counted_in_mailboxes(
    telemetry, start, operator
):
    telemetry.mailbox(ALICE)
    telemetry.everyday(ALICE)
    ids = internal_spray(telemetry)
    telemetry.ingest()
    investigation = start()

    soft_delete = investigation.actions.get(action_type=RemediationAction.Type.SOFT_DELETE_MESSAGES)
    assert soft_delete.finding.verdict == "suspicious"
    assert sorted(soft_delete.target["event_ids"]) == sorted(ids)
    assert (soft_delete.target["internal_copies"], soft_delete.target["internal_mailboxes"]) == (36, 3)
    assert soft_delete.target_label.endswith(": 36 copies in 3 internal mailboxes")

    actions.decide_actions(soft_delete, actor=operator, approve=True)
    actions.run_approved_action(soft_delete.pk)
    soft_delete.refresh_from_db()
    assert soft_delete.status == RemediationAction.Status.COMPLETED


def test_a_spam_cluster_sent_only_outside_proposes_no_soft_delete(telemetry, start):
    telemetry.mailbox(ALICE)
    for n in range(12):
        telemetry.message(ALICE, at=hours_ago(5) + timedelta(minutes=n), external=3, verdict="spam",
                          subject="You won", urls=["https://gift-cards-now.example/claim"])  # fmt: skip
    telemetry.ingest()
    assert "soft_delete_messages" not in proposals(start())


def test_a_link_on_a_lookalike_is_a_named_risk_point(telemetry, start):
    telemetry.mailbox(ALICE)
    telemetry.everyday(ALICE)
    telemetry.message(ALICE, at=hours_ago(2), external=5, subject="Updated bank details",
                      urls=["https://contoso-payments.example/iban"])  # fmt: skip
    telemetry.ingest()
    investigation = start()
    reasons = [r["reason"] for r in investigation.risk_reasons if r["analyzer"] == "lookalikes"]
    assert reasons == [f"Link on a lookalike of {HOME}: contoso-payments.example (added word)"]
    finding = investigation.findings.get(analyzer="lookalikes")
    assert finding.verdict == "malicious" and finding.data["lookalike"]["imitates"] == HOME


def test_forwarding_to_a_lookalike_is_a_named_risk_point(telemetry, start):
    telemetry.mailbox(ALICE)
    telemetry.forwarding(ALICE, "alice@c0ntoso.example", at=hours_ago(3))
    telemetry.ingest()
    investigation = start()
    reasons = [r["reason"] for r in investigation.risk_reasons if r["analyzer"] == "lookalikes"]
    assert reasons == [f"Forwarding to a lookalike of {HOME}: c0ntoso.example (homoglyphs)"]


def test_a_compromised_verdict_proposes_account_actions_with_only_spam_clusters(telemetry, start):
    telemetry.mailbox(ALICE)
    telemetry.everyday(ALICE)
    internal_spray(telemetry, copies=30)
    telemetry.forwarding(ALICE, "alice@c0ntoso.example", at=hours_ago(3))
    telemetry.ingest()
    investigation = start()
    assert investigation.verdict == "compromised"
    assert not investigation.clusters.filter(verdict="malicious").exists()
    assert {"force_password_reset", "revoke_sessions", "soft_delete_messages"} <= set(
        proposals(investigation)
    )
