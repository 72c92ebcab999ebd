"""The loop's invariants when an analyst leaves the happy path (issue 14, DESIGN §12, docs/invariants.md):
undo reopens and proposes again, stop / undo / expiry / release / manual completion each publish exactly one
change-feed entry of their kind, the console's own acts are not evidence, a true positive is never suppressed,
an overdue action reads Expired without beat, and a release resolves the user's restriction alerts."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from alerts.exceptions import AlertStateError
from alerts.models import Alert, AlertPolicy
from alerts.services import resolve_alert
from core.models import ChangeFeedEntry
from investigations import actions
from investigations.models import Investigation, RemediationAction
from mailboxes.models import MailboxForwarding
from restricted_users.models import CHECKLIST_ITEMS, Restriction
from restricted_users.services import release_user, restrict_by_hand

from .builders import ALICE, OUTSIDE, hours_ago, investigation_of, mailbox

pytestmark = pytest.mark.django_db

S = Investigation.Status
A = RemediationAction.Status


def feed(kind: str) -> int:
    return ChangeFeedEntry.objects.filter(kind=kind).count()


def decide_everything(investigation, operator, run_on_commit, *, approve_type: str) -> RemediationAction:
    """Approve the actions of one type, reject the rest: the investigation ends Remediated."""
    chosen = list(investigation.actions.filter(status=A.PENDING, action_type=approve_type))
    others = list(investigation.actions.filter(status=A.PENDING).exclude(action_type=approve_type))
    with run_on_commit():
        actions.decide_actions(chosen, actor=operator, approve=True)
    if others:
        for action_type in {a.action_type for a in others}:
            with run_on_commit():
                actions.decide_actions(
                    [a for a in others if a.action_type == action_type],
                    actor=operator,
                    approve=False,
                    comment="not needed",
                )
    investigation.refresh_from_db()
    return chosen[0]


def test_undo_reopens_the_investigation_and_its_alerts_and_proposes_the_remediation_again(
    forwarding_case, operator, run_on_commit
):
    investigation = forwarding_case
    done = decide_everything(investigation, operator, run_on_commit, approve_type="turn_off_forwarding")
    assert investigation.status == S.REMEDIATED
    forwarding_alert = Alert.objects.get(mailbox__address=ALICE, policy__kind=AlertPolicy.Kind.FORWARDING)
    assert forwarding_alert.status == Alert.Status.RESOLVED
    assert not MailboxForwarding.objects.get(mailbox=mailbox(ALICE)).forward_to

    with run_on_commit():
        actions.request_undo(RemediationAction.objects.get(pk=done.pk), actor=operator, comment="wrong user")

    investigation.refresh_from_db()
    forwarding_alert.refresh_from_db()
    assert MailboxForwarding.objects.get(mailbox=mailbox(ALICE)).forward_to == f"drop@{OUTSIDE}"
    assert investigation.status == S.PENDING_ACTION  # no longer claims Remediated
    assert forwarding_alert.status == Alert.Status.NEW  # the evidence is back
    again = investigation.actions.get(action_type="turn_off_forwarding", status=A.PENDING)
    assert again.pk != done.pk and again.target == done.target

    # A re-run keeps the one open proposal (no duplicate), and approving it remediates again.
    from investigations import playbook

    playbook.run_investigation(investigation.pk)
    assert investigation.actions.filter(action_type="turn_off_forwarding", status=A.PENDING).count() == 1
    with run_on_commit():
        actions.decide_actions([again], actor=operator, approve=True)
    investigation.refresh_from_db()
    assert investigation.status == S.REMEDIATED
    assert not MailboxForwarding.objects.get(mailbox=mailbox(ALICE)).forward_to


def test_stop_undo_expiry_release_and_manual_completion_each_publish_one_entry_of_their_kind(
    forwarding_case, operator, administrator, run_on_commit, settings
):
    investigation = forwarding_case
    done = decide_everything(investigation, operator, run_on_commit, approve_type="turn_off_forwarding")

    before = feed("action.undone")
    with run_on_commit():
        actions.request_undo(RemediationAction.objects.get(pk=done.pk), actor=operator, comment="wrong user")
    assert feed("action.undone") == before + 1

    again = investigation.actions.get(status=A.PENDING)
    before = feed("action.expired")
    actions.expire_pending_actions(now=again.expires_at + timedelta(seconds=1))
    assert feed("action.expired") == before + 1

    # Manual completion: an action waiting for a manual step, reported done by hand.
    manual = RemediationAction.objects.create(
        tenant=investigation.tenant, investigation=investigation, action_type="force_password_reset",
        target={"mailbox_id": investigation.mailbox_id}, target_label="Reset", target_key="manual-test",
        status=A.MANUAL, manual_step="Reset it by hand", expires_at=timezone.now() + timedelta(days=7),
    )  # fmt: skip
    before = feed("action.completed")
    actions.mark_manual_action(manual, actor=operator, done=True)
    assert feed("action.completed") == before + 1

    # Stop: one investigation.stopped entry.
    RemediationAction.objects.create(
        tenant=investigation.tenant, investigation=investigation, action_type="revoke_sessions",
        target={"mailbox_id": investigation.mailbox_id}, target_label="Revoke", target_key="stop-test",
        status=A.PENDING, expires_at=timezone.now() + timedelta(days=7),
    )  # fmt: skip
    investigation.refresh_from_db()
    actions.settle_investigation(investigation)  # reopened by the new proposal
    before_stopped, before_decided = feed("investigation.stopped"), feed("action.decided")
    actions.stop_investigation(investigation, actor=operator, comment="the user is on holiday")
    assert feed("investigation.stopped") == before_stopped + 1
    assert feed("action.decided") == before_decided + 1  # the withdrawn action, through the decision path
    investigation.refresh_from_db()
    assert investigation.status == S.TERMINATED_BY_USER

    # Release: one restriction.released entry.
    restriction, _ = restrict_by_hand(mailbox(ALICE), actor=administrator, reason_text="contain")
    before = feed("restriction.released")
    release_user(
        restriction, actor=administrator, reason="clean", attestations=dict.fromkeys(CHECKLIST_ITEMS, True)
    )
    assert feed("restriction.released") == before + 1


def test_an_action_past_its_expiry_reads_expired_and_cannot_be_decided_before_beat_runs(
    forwarding_case, operator
):
    action = forwarding_case.actions.filter(status=A.PENDING).first()
    with time_machine.travel(action.expires_at + timedelta(minutes=1), tick=False):
        action.refresh_from_db()
        assert action.status == A.PENDING  # beat has not run
        assert action.effective_status == A.EXPIRED
        assert not RemediationAction.objects.pending().filter(pk=action.pk).exists()
        assert RemediationAction.objects.overdue().filter(pk=action.pk).exists()
        with pytest.raises(actions.ActionError, match="expired"):
            actions.decide_actions([action], actor=operator, approve=True)


def test_the_consoles_own_restrictions_raise_no_alert_and_add_no_risk(
    telemetry, administrator, run_on_commit
):
    telemetry.mailbox(ALICE)
    telemetry.ingest()
    with run_on_commit():
        restriction, _ = restrict_by_hand(mailbox(ALICE), actor=administrator, reason_text="call from HR")
    assert restriction.source == Restriction.Source.MANUAL
    assert not Alert.objects.filter(mailbox__address=ALICE).exists()
    assert not Investigation.objects.filter(mailbox__address=ALICE).exists()


def test_a_true_positive_cannot_be_suppressed_and_a_suppression_hides_only_its_own_policy(
    forwarding_case, operator, telemetry, run_on_commit
):
    alert = Alert.objects.get(mailbox__address=ALICE, policy__kind=AlertPolicy.Kind.FORWARDING)
    with pytest.raises(AlertStateError, match="true positive cannot be suppressed"):
        resolve_alert(
            alert, actor=operator, classification=Alert.Classification.TP_COMPROMISED,
            suppress_for=timedelta(days=7),
        )  # fmt: skip
    alert.refresh_from_db()
    assert alert.status != Alert.Status.RESOLVED  # nothing half-written
    resolve_alert(
        alert,
        actor=operator,
        classification=Alert.Classification.INFORMATIONAL,
        suppress_for=timedelta(days=7),
    )
    # Another policy's alert for the same user still fires: an inbox rule hiding finance mail.
    telemetry.rule(
        ALICE, "r1", at=hours_ago(1), name="x", conditions={"subject_contains": ["invoice"]},
        actions={"move_to_folder": "RSS Feeds"},
    )  # fmt: skip
    with run_on_commit():
        telemetry.ingest_and_detect()
    assert Alert.objects.filter(
        mailbox__address=ALICE, policy__kind=AlertPolicy.Kind.INBOX_MANIPULATION
    ).exists()


def test_a_release_resolves_the_users_restriction_alerts_or_keeps_them_open_with_a_reason(
    telemetry, administrator, run_on_commit
):
    from alerts.services import raise_restriction_alert
    from restricted_users.services import restrict_user

    telemetry.mailbox(ALICE)
    telemetry.ingest()

    def restricted_by_policy() -> Restriction:
        with run_on_commit():
            restriction, _ = restrict_user(
                mailbox(ALICE), policy_name="Email sending limit exceeded", reason={"text": "limit"},
                expires_at=None, source="policy",
            )  # fmt: skip
        raise_restriction_alert(restriction.pk)
        return restriction

    first = restricted_by_policy()
    [alert] = Alert.objects.filter(mailbox__address=ALICE, policy__kind=AlertPolicy.Kind.RESTRICTION)
    with pytest.raises(Exception, match="stay open"):
        release_user(
            first, actor=administrator, reason="clean", attestations=dict.fromkeys(CHECKLIST_ITEMS, True),
            resolve_alerts=False,
        )  # fmt: skip
    with run_on_commit():
        release_user(
            first, actor=administrator, reason="clean", attestations=dict.fromkeys(CHECKLIST_ITEMS, True),
            resolve_alerts=False, keep_alerts_reason="HR still reviewing",
        )  # fmt: skip
    alert.refresh_from_db()
    assert alert.status != Alert.Status.RESOLVED
    assert alert.comments.filter(body__contains="HR still reviewing").exists()

    second = restricted_by_policy()
    with run_on_commit():
        release_user(
            second,
            actor=administrator,
            reason="password reset",
            attestations=dict.fromkeys(CHECKLIST_ITEMS, True),
        )
    assert not Alert.objects.open().filter(mailbox__address=ALICE, policy__kind=AlertPolicy.Kind.RESTRICTION)


def test_the_sign_in_alert_and_its_investigation_blame_the_same_sign_in(telemetry, run_on_commit):
    """One implementation of the sign-in rules: of an impossible pair, both blame the less usual country, even
    when the user's own sign-in from home is the later one of the pair."""
    from datetime import timedelta as td

    from .builders import days_ago

    telemetry.mailbox(ALICE)
    for day in range(20, 0, -1):
        telemetry.sign_in(ALICE, at=days_ago(day, 8), ip="198.51.100.7", country="GB")
    foreign = telemetry.sign_in(ALICE, at=hours_ago(3), ip="203.0.113.66", country="BR")
    telemetry.sign_in(ALICE, at=hours_ago(3) + td(hours=1), ip="198.51.100.7", country="GB")  # home again
    with run_on_commit():
        telemetry.ingest_and_detect()
    alert = Alert.objects.get(mailbox__address=ALICE, policy__kind=AlertPolicy.Kind.SIGN_IN)
    travel = [r for r in alert.details["reasons"] if r["rule"] == "impossible_travel"]
    assert travel and {r["blamed"] for r in travel} == {foreign}
    assert set(alert.evidence.values_list("event_id", flat=True)) == {foreign}

    investigation = investigation_of(ALICE) if Investigation.objects.filter(mailbox__address=ALICE) else None
    if investigation is None:  # the sign-in policy investigates only when another alert is open: start one
        from investigations.services import start_investigation_for_alert

        with run_on_commit():
            investigation = start_investigation_for_alert(alert.pk)
    findings = investigation.findings.filter(analyzer="sign_ins")
    assert [f.entity_key for f in findings] == ["ip:203.0.113.66"]
    assert foreign in findings.get().data["sign_in_ids"]
