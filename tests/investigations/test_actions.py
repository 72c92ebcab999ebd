"""The remediation action services: every row of the action state table, execution through the connector,
undo, manual steps, expiry, block sender, and what an investigation does when it is remediated."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from alerts.models import Alert
from core.models import AuditEvent
from core.services import DispatchOnCommit
from investigations import actions
from investigations.action_tasks import beat_expire_actions
from investigations.connectors import BUILTIN_NOTE
from investigations.exceptions import ActionError, ActionPermissionError
from investigations.models import Investigation, RemediationAction, SoftDeletedMessage
from mailboxes.models import Delegation, DirectoryChange, InboxRule, Mailbox, MailboxForwarding
from restricted_users.models import Restriction
from restricted_users.services import checklist_auto_ticks, restrict_user

from .action_builders import (
    ALICE,
    EVIL,
    HOME,
    Status,
    Type,
    add_delegate,
    add_rule,
    approve_now,
    forward,
    make_action,
    make_alert,
    make_investigation,
    make_mailbox,
    sent_messages,
)
from .fake_connectors import FlakyConnector, UnreachableForUndoConnector

pytestmark = pytest.mark.django_db

FAKES = "tests.investigations.fake_connectors"
REASON = "The user set this forwarding up on purpose."


@pytest.fixture
def mailbox(tenant):
    return make_mailbox(tenant)


@pytest.fixture
def investigation(mailbox):
    return make_investigation(mailbox)


def use_connector(settings, name: str) -> None:
    settings.CONNECTOR_KINDS = {"builtin": f"{FAKES}.{name}"}


def forwarding_of(mailbox: Mailbox) -> MailboxForwarding:
    return MailboxForwarding.objects.get(mailbox=mailbox)


# ------------------------------------------------------------------------------------------------ state table


def _in_state(investigation, operator, state: str) -> RemediationAction:
    """A turn-off-forwarding action (the mailbox forwards to EVIL) brought to ``state`` as it gets there."""
    forward(investigation.mailbox)
    action = make_action(investigation, Type.TURN_OFF_FORWARDING, label=f"Forwarding to {EVIL}")
    if state == Status.PENDING:
        return action
    if state in (Status.COMPLETED, Status.UNDONE):
        approve_now(action, operator)
        actions.run_approved_action(action.pk)
        if state == Status.UNDONE:
            actions.undo_action(action, actor=operator, comment="restore")
    elif state == Status.MANUAL:
        approve_now(action, operator)
        RemediationAction.objects.filter(pk=action.pk).update(
            status=Status.MANUAL, manual_step="Turn it off by hand.", prior_state={"forward_to": EVIL}
        )
    elif state == Status.RUNNING:
        approve_now(action, operator)
        RemediationAction.objects.filter(pk=action.pk).update(
            status=Status.RUNNING, running_since=timezone.now() - timedelta(minutes=1), attempts=1
        )
    else:
        RemediationAction.objects.filter(pk=action.pk).update(status=state)
    action.refresh_from_db()
    return action


def _approve(action, operator, settings):
    actions.decide_actions(action, actor=operator, approve=True, comment="")


def _reject(action, operator, settings):
    actions.decide_actions(action, actor=operator, approve=False, comment=REASON)


def _reject_silently(action, operator, settings):
    actions.decide_actions(action, actor=operator, approve=False, comment="  ")


def _expire_at_seven_days(action, operator, settings):
    assert actions.expire_pending_actions(now=action.proposed_at + timedelta(days=7)) == 1


def _expire_a_minute_early(action, operator, settings):
    assert actions.expire_pending_actions(now=action.proposed_at + timedelta(days=7, minutes=-1)) == 0


def _approve_after_expiry(action, operator, settings):
    with time_machine.travel(action.proposed_at + timedelta(days=7, minutes=1)):
        _approve(action, operator, settings)


def _run(action, operator, settings):
    actions.run_approved_action(action.pk)


def _run_already_done(action, operator, settings):
    from mailboxes.services import set_forwarding

    set_forwarding(action.investigation.mailbox, forward_to=None, actor=None, source="api")
    _run(action, operator, settings)


def _run_on(name: str):
    def run(action, operator, settings):
        use_connector(settings, name)
        FlakyConnector.calls, FlakyConnector.failures = 0, 99
        _run(action, operator, settings)

    return run


def _reap(seconds_past_lease: int):
    def reap(action, operator, settings):
        actions.reap_expired_leases(
            now=action.running_since + actions.lease() + timedelta(seconds=seconds_past_lease)
        )

    return reap


def _mark(done: bool, comment: str):
    def mark(action, operator, settings):
        actions.mark_manual_action(action, actor=operator, done=done, comment=comment)

    return mark


def _undo(action, operator, settings):
    actions.undo_action(action, actor=operator, comment="The analyst confirmed it was legitimate.")


def row(start: str, operation, end: str, error: str | None = None, *, how: str):
    arrow = f"{start} -> {end}" if start != end else f"{start} stays"
    return pytest.param(start, operation, end, error, id=f"{arrow} ({how})")


STATE_TABLE = [
    row("pending", _approve, "approved", how="operator approves"),
    row("pending", _reject, "rejected", how="operator rejects with a comment"),
    row("pending", _reject_silently, "pending", "comment", how="a reject without comment is refused"),
    row("pending", _expire_at_seven_days, "expired", how="7 days pass"),
    row("pending", _expire_a_minute_early, "pending", how="a minute before 7 days"),
    row("pending", _approve_after_expiry, "pending", "expired on", how="too late to approve"),
    row("approved", _run, "completed", how="a worker applies it"),
    row("approved", _run_already_done, "completed", how="nothing left to do"),
    row("approved", _run_on("ManualConnector"), "manual", how="the platform has no API"),
    row("approved", _run_on("BrokenConnector"), "failed", how="a permanent connector error"),
    row("approved", _run_on("FlakyConnector"), "approved", how="a transient error schedules a retry"),
    row("approved", _approve, "approved", "already approved", how="a second approval is refused"),
    row("running", _reap(1), "approved", how="the reaper, lease expired"),
    row("running", _reap(-1), "running", how="the reaper, lease still held"),
    row("running", _run, "running", how="a second worker finds nothing to claim"),
    row("running", _reject, "running", "already running", how="rejecting is refused"),
    row("manual", _mark(True, ""), "completed", how="marked done by hand"),
    row("manual", _mark(False, "The admin center refused it."), "failed", how="marked failed"),
    row("manual", _mark(False, ""), "manual", "comment", how="failed without a comment is refused"),
    row("manual", _approve, "manual", "already manual step required", how="approving is refused"),
    row("completed", _undo, "undone", how="operator undoes it"),
    row("completed", _approve, "completed", "already completed", how="approving is refused"),
    row("failed", _undo, "failed", "Only a completed action", how="undo is refused"),
    row("rejected", _approve, "rejected", "already rejected", how="approving is refused"),
    row("expired", _approve, "expired", "expired on", how="approving is refused"),
    row("undone", _undo, "undone", "Only a completed action", how="a second undo is refused"),
]


@pytest.mark.parametrize(("start", "operation", "end", "error"), STATE_TABLE)
def test_the_action_state_table(investigation, operator, settings, start, operation, end, error):
    action = _in_state(investigation, operator, start)
    if error:
        with pytest.raises(ActionError, match=error):
            operation(action, operator, settings)
    else:
        operation(action, operator, settings)
    action.refresh_from_db()
    assert action.status == end


# ------------------------------------------------------------------------------------------------ decisions


def test_approving_sends_the_action_to_a_worker_on_commit_which_completes_it(
    investigation, operator, django_capture_on_commit_callbacks
):
    forward(investigation.mailbox)
    action = make_action(investigation, Type.TURN_OFF_FORWARDING)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        actions.decide_actions(action, actor=operator, approve=True, comment="Confirmed with the user")
    assert len([c for c in callbacks if not isinstance(c, DispatchOnCommit)]) == 1  # others: notifications
    action.refresh_from_db()
    assert action.status == Status.COMPLETED
    assert action.decided_by == operator
    assert action.attempts == 1
    assert BUILTIN_NOTE in action.result
    assert forwarding_of(investigation.mailbox).forward_to is None
    approved = AuditEvent.objects.for_target(action).get(action="investigations.action.approved")
    assert approved.actor == operator and approved.comment == "Confirmed with the user"
    assert AuditEvent.objects.for_target(action).filter(action="investigations.action.completed").exists()


def test_a_rejection_needs_a_comment_and_records_it(investigation, operator):
    action = make_action(investigation, Type.REVOKE_SESSIONS)
    with pytest.raises(ActionError, match="comment"):
        actions.decide_actions(action, actor=operator, approve=False)
    actions.decide_actions(action, actor=operator, approve=False, comment=REASON)
    action.refresh_from_db()
    assert (action.status, action.decision_comment, action.decided_by) == (Status.REJECTED, REASON, operator)
    investigation.refresh_from_db()
    assert investigation.status == Investigation.Status.TERMINATED_BY_USER


def test_readers_cannot_decide_undo_or_close_manual_steps(investigation, reader):
    action = make_action(investigation, Type.REVOKE_SESSIONS)
    with pytest.raises(ActionPermissionError):
        actions.decide_actions(action, actor=reader, approve=True)
    with pytest.raises(ActionPermissionError):
        actions.mark_manual_action(action, actor=reader, done=True)
    with pytest.raises(ActionPermissionError):
        actions.undo_action(action, actor=reader, comment="no")
    action.refresh_from_db()
    assert action.status == Status.PENDING


def test_a_bulk_decision_may_mix_action_types(tenant, operator):
    first = make_investigation(make_mailbox(tenant, f"bob@{HOME}"))
    second = make_investigation(make_mailbox(tenant, f"carol@{HOME}"))
    resets = [make_action(first, Type.FORCE_PASSWORD_RESET), make_action(second, Type.FORCE_PASSWORD_RESET)]
    revoke = make_action(first, Type.REVOKE_SESSIONS)
    decided = actions.decide_actions([*resets, revoke], actor=operator, approve=True)
    assert {a.status for a in decided} == {Status.APPROVED}
    assert AuditEvent.objects.filter(action="investigations.action.approved").count() == 3


def test_a_bulk_decision_is_all_or_nothing(tenant, operator):
    investigations = [make_investigation(make_mailbox(tenant, f"user{n}@{HOME}")) for n in range(3)]
    chosen = [make_action(i, Type.DISABLE_ACCOUNT) for i in investigations]
    RemediationAction.objects.filter(pk=chosen[1].pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(ActionError, match=rf"#{chosen[1].pk} .*expired on .*Nothing was decided"):
        actions.decide_actions(chosen, actor=operator, approve=True)
    assert set(RemediationAction.objects.values_list("status", flat=True)) == {Status.PENDING}
    assert not AuditEvent.objects.filter(action="investigations.action.approved").exists()


# ------------------------------------------------------------------------------------------------ execution


def test_an_action_with_nothing_left_to_do_completes_as_already_done(investigation, operator):
    action = approve_now(make_action(investigation, Type.TURN_OFF_FORWARDING), operator)
    assert actions.run_approved_action(action.pk) == Status.COMPLETED
    action.refresh_from_db()
    assert action.result.startswith("Already done: forwarding is already off")
    assert action.prior_state is None and not action.is_undoable
    assert not DirectoryChange.objects.filter(source="investigation").exists()


def test_each_change_is_recorded_as_directory_history_from_the_investigation(investigation, operator):
    forward(investigation.mailbox)
    action = approve_now(make_action(investigation, Type.TURN_OFF_FORWARDING), operator)
    actions.run_approved_action(action.pk)
    change = DirectoryChange.objects.get(source="investigation")
    assert (change.kind, change.operation, change.state["forward_to"]) == ("forwarding", "cleared", EVIL)


def test_a_platform_without_an_api_asks_for_the_exact_manual_step(investigation, operator, settings):
    """The manual step names the user; the operator's "done" completes the action and the investigation."""
    use_connector(settings, "ManualConnector")
    action = approve_now(make_action(investigation, Type.REVOKE_SESSIONS), operator)
    assert actions.run_approved_action(action.pk) == Status.MANUAL
    action.refresh_from_db()
    assert (
        action.manual_step
        == f"In the identity provider, revoke every sign-in session (refresh tokens) of {ALICE}."
    )
    investigation.refresh_from_db()
    assert investigation.status == Investigation.Status.PENDING_ACTION  # a manual step is still open
    actions.mark_manual_action(action, actor=operator, done=True, comment="Done in Entra")
    action.refresh_from_db()
    assert action.status == Status.COMPLETED and "Done in Entra" in action.result
    investigation.refresh_from_db()
    assert investigation.status == Investigation.Status.REMEDIATED


@pytest.fixture
def approve_against_flaky_connector(investigation, operator, settings, django_capture_on_commit_callbacks):
    """Approve turning off forwarding through a connector that answers HTTP 503 ``failures`` times first; the
    action (run in-process, with its retries) as it ended."""

    def approve(failures: int) -> RemediationAction:
        use_connector(settings, "FlakyConnector")
        FlakyConnector.calls, FlakyConnector.failures = 0, failures
        forward(investigation.mailbox)
        action = make_action(investigation, Type.TURN_OFF_FORWARDING)
        with django_capture_on_commit_callbacks(execute=True):
            actions.decide_actions(action, actor=operator, approve=True)
        action.refresh_from_db()
        return action

    return approve


def test_transient_errors_are_retried_with_backoff_then_complete(approve_against_flaky_connector):
    action = approve_against_flaky_connector(failures=2)
    assert action.status == Status.COMPLETED
    assert action.attempts == 3
    retries = AuditEvent.objects.for_target(action).filter(action="investigations.action.retry_scheduled")
    assert retries.count() == 2
    assert [actions.retry_delay(n) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]


def test_an_action_fails_once_transient_errors_outlast_the_attempts(
    investigation, settings, approve_against_flaky_connector
):
    action = approve_against_flaky_connector(failures=99)
    assert action.status == Status.FAILED
    assert action.attempts == settings.ACTION_MAX_ATTEMPTS == FlakyConnector.calls
    assert "Failed after 5 attempts" in action.result and "HTTP 503" in action.result
    assert forwarding_of(investigation.mailbox).forward_to == EVIL
    investigation.refresh_from_db()
    assert investigation.status == Investigation.Status.PARTIALLY_REMEDIATED  # none open, one failed


def test_a_permanent_connector_error_fails_at_once_with_its_reason(investigation, operator, settings):
    use_connector(settings, "BrokenConnector")
    action = approve_now(make_action(investigation, Type.DISABLE_ACCOUNT), operator)
    actions.run_approved_action(action.pk)
    action.refresh_from_db()
    assert (action.status, action.attempts) == (Status.FAILED, 1)
    assert "insufficient privileges" in action.result
    assert Mailbox.objects.get(pk=investigation.mailbox_id).account_enabled


def test_an_unknown_connector_kind_fails_the_action_with_a_clear_reason(
    investigation, operator, tenant, settings
):
    settings.CONNECTOR_KINDS = {"builtin": "investigations.connectors.BuiltinConnector"}  # no m365 entry
    tenant.connector_kind = "m365"
    tenant.save(update_fields=["connector_kind"])
    action = approve_now(make_action(investigation, Type.DISABLE_ACCOUNT), operator)
    actions.run_approved_action(action.pk)
    action.refresh_from_db()
    assert action.status == Status.FAILED
    assert "No connector is configured for the kind “m365”" in action.result


def test_block_sender_restricts_the_user_until_released_whatever_the_connector(
    investigation, operator, settings
):
    use_connector(settings, "ManualConnector")
    action = approve_now(make_action(investigation, Type.BLOCK_SENDER), operator)
    assert actions.run_approved_action(action.pk) == Status.COMPLETED
    restriction = Restriction.objects.active().get(mailbox=investigation.mailbox)
    assert restriction.source == Restriction.Source.INVESTIGATION
    assert restriction.expires_at is None
    assert restriction.reason["investigation"] == investigation.pk
    action.refresh_from_db()
    assert f"restriction #{restriction.pk}" in action.result
    assert actions.undo_refusal(action) == (
        "A blocked sender is released by an administrator in Restricted Users, not undone here."
    )


def test_block_sender_extends_a_restriction_until_next_day_to_until_released(investigation, operator):
    placed, _ = restrict_user(
        investigation.mailbox,
        policy_name="Email sending limit exceeded",
        reason={},
        expires_at=timezone.now() + timedelta(hours=5),
        source="policy",
    )
    action = approve_now(make_action(investigation, Type.BLOCK_SENDER), operator)
    actions.run_approved_action(action.pk)
    placed.refresh_from_db()
    assert placed.expires_at is None
    assert Restriction.objects.count() == 1


def test_soft_delete_records_each_internal_copy_and_its_undo_restores_them(investigation, operator):
    cluster = sent_messages(investigation.mailbox, investigation, count=2)
    action = approve_now(
        make_action(investigation, Type.SOFT_DELETE_MESSAGES, target={"cluster_id": cluster.pk}), operator
    )
    actions.run_approved_action(action.pk)
    action.refresh_from_db()
    assert action.status == Status.COMPLETED
    assert action.result.startswith("2 message(s) soft-deleted from 2 internal recipient(s)")
    copies = set(SoftDeletedMessage.objects.active().values_list("event_id", "recipient"))
    assert copies == {(e, r) for e in cluster.event_ids for r in (f"bob@{HOME}", f"carol@{HOME}")}
    actions.undo_action(action, actor=operator, comment="Legitimate invoice run")
    assert not SoftDeletedMessage.objects.active().exists()
    assert SoftDeletedMessage.objects.filter(restored_at__isnull=False).count() == 4


# ------------------------------------------------------------------------------------------------ undo


def _forwarding_state(mailbox):
    row = MailboxForwarding.objects.filter(mailbox=mailbox).first()
    return (row.forward_to, row.keep_copy) if row else (None, False)


def _rule_state(mailbox):
    rule = InboxRule.objects.get(mailbox=mailbox, rule_id="rule-1")
    return (rule.is_present, rule.name, rule.conditions, rule.actions)


def _delegate_state(mailbox):
    return sorted(Delegation.objects.present().for_mailbox(mailbox).values_list("delegate", "access"))


def _account_state(mailbox):
    return Mailbox.objects.get(pk=mailbox.pk).account_enabled


def _soft_deleted(mailbox):
    return SoftDeletedMessage.objects.active().count()


REVERSIBLE = [
    (Type.TURN_OFF_FORWARDING, lambda m, i: forward(m), {}, _forwarding_state),
    (Type.REMOVE_INBOX_RULE, lambda m, i: add_rule(m), {"rule_id": "rule-1"}, _rule_state),
    (
        Type.REMOVE_DELEGATION,
        lambda m, i: add_delegate(m),
        {"delegate": f"mallory@{HOME}", "access": "full_access"},
        _delegate_state,
    ),
    (Type.DISABLE_ACCOUNT, lambda m, i: None, {}, _account_state),
    (Type.SOFT_DELETE_MESSAGES, lambda m, i: sent_messages(m, i), None, _soft_deleted),
]


@pytest.mark.parametrize(
    ("action_type", "arrange", "target", "observe"), REVERSIBLE, ids=[r[0] for r in REVERSIBLE]
)
def test_undo_restores_the_prior_state_of_each_reversible_type(
    investigation, operator, action_type, arrange, target, observe
):
    mailbox = investigation.mailbox
    arrange(mailbox, investigation)
    if target is None:
        target = {"cluster_id": investigation.clusters.get().pk}
    before = observe(mailbox)
    action = approve_now(make_action(investigation, action_type, target=target), operator)
    assert actions.run_approved_action(action.pk) == Status.COMPLETED
    assert observe(mailbox) != before, "the action changed nothing"
    actions.undo_action(action, actor=operator, comment="False positive")
    assert observe(mailbox) == before
    action.refresh_from_db()
    assert (action.status, action.undone_by) == (Status.UNDONE, operator)
    undone = AuditEvent.objects.for_target(action).get(action="investigations.action.undone")
    assert undone.comment == "False positive" and undone.actor == operator
    assert DirectoryChange.objects.filter(source="investigation").count() == (
        0 if action_type == Type.SOFT_DELETE_MESSAGES else 2
    )


@pytest.mark.parametrize("action_type", [Type.FORCE_PASSWORD_RESET, Type.REVOKE_SESSIONS, Type.BLOCK_SENDER])
def test_undo_is_refused_for_actions_that_cannot_be_reversed(investigation, operator, action_type):
    action = approve_now(make_action(investigation, action_type), operator)
    actions.run_approved_action(action.pk)
    action.refresh_from_db()
    assert action.status == Status.COMPLETED
    with pytest.raises(ActionError, match="cannot be undone|not undone here"):
        actions.undo_action(action, actor=operator, comment="please")
    with pytest.raises(ActionError):
        actions.request_undo(action, actor=operator, comment="please")
    action.refresh_from_db()
    assert action.status == Status.COMPLETED


def test_undo_needs_a_comment_and_an_operator(investigation, operator, reader):
    forward(investigation.mailbox)
    action = approve_now(make_action(investigation, Type.TURN_OFF_FORWARDING), operator)
    actions.run_approved_action(action.pk)
    action.refresh_from_db()
    with pytest.raises(ActionError, match="comment"):
        actions.request_undo(action, actor=operator, comment="")
    with pytest.raises(ActionPermissionError):
        actions.request_undo(action, actor=reader, comment="why not")


def test_a_requested_undo_runs_in_the_worker_task(
    investigation, operator, django_capture_on_commit_callbacks
):
    forward(investigation.mailbox)
    action = approve_now(make_action(investigation, Type.TURN_OFF_FORWARDING), operator)
    actions.run_approved_action(action.pk)
    action.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        actions.request_undo(action, actor=operator, comment="Mail flow confirmed legitimate")
    action.refresh_from_db()
    assert action.status == Status.UNDONE
    assert forwarding_of(investigation.mailbox).forward_to == EVIL
    # A duplicate delivery finds it undone and changes nothing.
    assert actions.perform_requested_undo(action.pk, operator.pk, "again") == Status.UNDONE


def test_an_undo_the_platform_keeps_timing_out_is_retried_then_audited_as_failed(
    investigation, operator, settings, django_capture_on_commit_callbacks
):
    forward(investigation.mailbox)
    action = approve_now(make_action(investigation, Type.TURN_OFF_FORWARDING), operator)
    actions.run_approved_action(action.pk)
    action.refresh_from_db()
    use_connector(settings, "UnreachableForUndoConnector")
    UnreachableForUndoConnector.undo_calls = 0
    with django_capture_on_commit_callbacks(execute=True):
        actions.request_undo(action, actor=operator, comment="Legitimate after all")
    assert UnreachableForUndoConnector.undo_calls == settings.ACTION_MAX_ATTEMPTS == 5
    action.refresh_from_db()
    assert action.status == Status.COMPLETED
    failed = AuditEvent.objects.for_target(action).get(action="investigations.action.undo_failed")
    assert failed.comment == "Gave up after 5 attempts: timed out talking to the platform"
    assert forwarding_of(investigation.mailbox).forward_to is None


# ---------------------------------------------------------------------------------- expiry, status, alerts


def test_pending_actions_expire_after_seven_days_and_the_investigation_is_terminated_by_system(investigation):
    proposed = timezone.now() - timedelta(days=7, minutes=1)
    action = make_action(investigation, Type.REVOKE_SESSIONS, proposed_at=proposed)
    fresh = make_action(investigation, Type.FORCE_PASSWORD_RESET, proposed_at=timezone.now())
    beat_expire_actions()
    action.refresh_from_db()
    assert action.status == Status.EXPIRED
    assert "within 7 days" in action.result
    assert RemediationAction.objects.get(pk=fresh.pk).status == Status.PENDING
    actions.expire_pending_actions(now=timezone.now() + timedelta(days=7))
    investigation.refresh_from_db()
    assert investigation.status == Investigation.Status.TERMINATED_BY_SYSTEM
    assert (
        AuditEvent.objects.filter(action="investigations.action.expired", actor_label="system").count() == 2
    )


def test_a_remediated_investigation_resolves_its_open_alerts(tenant, mailbox, operator):
    alert = make_alert(tenant, mailbox)
    investigation = make_investigation(mailbox, alert=alert)
    forward(mailbox)
    first = approve_now(make_action(investigation, Type.TURN_OFF_FORWARDING), operator)
    second = approve_now(make_action(investigation, Type.FORCE_PASSWORD_RESET), operator)
    actions.run_approved_action(first.pk)
    investigation.refresh_from_db()
    assert investigation.status == Investigation.Status.PARTIALLY_REMEDIATED
    assert Alert.objects.get(pk=alert.pk).status != Alert.Status.RESOLVED
    actions.run_approved_action(second.pk)
    investigation.refresh_from_db()
    alert.refresh_from_db()
    assert investigation.status == Investigation.Status.REMEDIATED
    assert (alert.status, alert.classification) == (
        Alert.Status.RESOLVED,
        Alert.Classification.TP_COMPROMISED,
    )
    resolved = AuditEvent.objects.for_target(alert).get(action="alerts.alert.resolved")
    assert resolved.actor_label == "investigation"


def test_a_suspicious_investigation_resolves_its_alerts_as_true_positive_other(tenant, mailbox, operator):
    alert = make_alert(tenant, mailbox)
    investigation = make_investigation(mailbox, alert=alert, verdict=Investigation.Verdict.SUSPICIOUS)
    action = approve_now(make_action(investigation, Type.REVOKE_SESSIONS), operator)
    actions.run_approved_action(action.pk)
    alert.refresh_from_db()
    assert alert.classification == Alert.Classification.TP_OTHER


def test_completed_actions_tick_the_release_checklist(investigation, operator):
    add_rule(investigation.mailbox)  # a rule left in place: the directory alone proves no review
    restriction, _ = restrict_user(
        investigation.mailbox,
        policy_name="Email sending limit exceeded",
        reason={},
        expires_at=None,
        source="policy",
    )
    assert "sessions_revoked" not in checklist_auto_ticks(restriction)
    for action_type in (Type.REVOKE_SESSIONS, Type.FORCE_PASSWORD_RESET):
        action = approve_now(make_action(investigation, action_type), operator)
        actions.run_approved_action(action.pk)
    ticks = checklist_auto_ticks(restriction)
    assert ticks["sessions_revoked"]
    assert ticks["password_reset"]
    assert ticks["forwarding_rules_delegates_reviewed"].startswith(
        f"Investigation #{investigation.pk} reviewed"
    )
