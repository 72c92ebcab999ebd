"""Actions carried out on the real servers by the mailstack connector: the Sieve forwarding loop (read →
event → alert → investigation → approved → script rewritten → undo restores it), soft delete to quarantine
and back, disable account at Dovecot and Postfix, revoke sessions, and doveadm down (a clear connector
error, retried)."""

from __future__ import annotations

import imaplib
import smtplib

import pytest

from investigations.models import RemediationAction
from mailboxes.models import Mailbox, MailboxForwarding
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ANN = "ann@example.test"
BOB = "bob@example.test"
CAROL = "carol@example.test"
REDIRECT = (
    'require ["copy", "fileinto"];\n'
    'if header :contains "subject" "newsletter" {\n    fileinto "News";\n}\n'
    'redirect :copy "drop@elsewhere.test";\n'
)
Type = RemediationAction.Type
Status = RemediationAction.Status


def upload_with_managesieve(user: str, password: str, name: str, script: str) -> None:
    """What the user's mail client does: ManageSieve PUTSCRIPT + SETACTIVE."""
    import warnings

    from sievelib.managesieve import Client

    from .servers import MANAGESIEVE_PORT

    client = Client("127.0.0.1", MANAGESIEVE_PORT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cleartext on loopback
        assert client.connect(user, password, starttls=False, authmech="PLAIN")
    assert client.putscript(name, script)
    assert client.setactive(name)
    client.logout()


def active_script(stack, user: str) -> str:
    listed = stack.doveadm("sieve", "list", "-u", user).stdout.splitlines()
    active = [line.split()[0] for line in listed if line.strip().endswith("ACTIVE")]
    assert active, f"{user} has no active Sieve script"
    return stack.doveadm("sieve", "get", "-u", user, active[0]).stdout


def action_of(kind: str) -> RemediationAction:
    return wait_for(
        lambda: RemediationAction.objects.filter(action_type=kind).first(), message=f"a proposed {kind}"
    )


def test_a_sieve_redirect_is_forwarding_and_turning_it_off_rewrites_the_script_then_undo_restores_it(
    stack, operator
):
    from investigations.actions import decide_actions, request_undo
    from mailstack.services import read_sieve

    upload_with_managesieve(ANN, "annpass", "rules", REDIRECT)
    result = read_sieve(stack.connection)
    assert result.accepted == 2  # the fileinto rule and the forwarding
    forwarding = MailboxForwarding.objects.get(mailbox__address=ANN)
    assert (forwarding.forward_to, forwarding.keep_copy) == ("drop@elsewhere.test", True)
    assert read_sieve(stack.connection).accepted == 0  # changes only

    action = action_of(Type.TURN_OFF_FORWARDING)
    assert action.investigation.mailbox.address == ANN
    decide_actions(action, actor=operator, approve=True)
    action.refresh_from_db()
    assert action.status == Status.COMPLETED, action.result
    assert "removed from its Sieve script" in action.result
    rewritten = active_script(stack, ANN)
    assert "redirect" not in rewritten
    assert 'fileinto "News"' in rewritten
    stack.deliver("someone@elsewhere.test", [ANN], message_id="<after-off@example.test>")
    assert not [m for m in stack.sink.messages if "drop@elsewhere.test" in m[1]]

    request_undo(action, actor=operator, comment="the forwarding was the user's own")
    action.refresh_from_db()
    assert action.status == Status.UNDONE, action.result
    restored = active_script(stack, ANN)
    assert 'redirect :copy "drop@elsewhere.test"' in restored
    stack.deliver("someone@elsewhere.test", [ANN], message_id="<after-undo@example.test>")
    wait_for(
        lambda: [m for m in stack.sink.messages if "drop@elsewhere.test" in m[1]],
        message="the redirect again",
    )


def test_removing_a_sieve_rule_keeps_the_rest_of_the_script(stack, operator, tenant):
    from investigations.actions import decide_actions
    from mailstack.services import read_sieve

    script = (
        'require ["fileinto", "imap4flags"];\n'
        'if header :contains "subject" "invoice" {\n    fileinto "Notes";\n    addflag "\\\\Seen";\n}\n'
        'if header :contains "subject" "newsletter" {\n    fileinto "News";\n}\n'
    )
    upload_with_managesieve(BOB, "bobpass", "bob-rules", script)
    read_sieve(stack.connection)
    bob = Mailbox.objects.get(address=BOB)
    hiding = next(rule for rule in bob.inbox_rules.all() if rule.actions.get("move_to_folder") == "Notes")
    assert hiding.actions == {"move_to_folder": "Notes", "mark_as_read": True}
    assert hiding.conditions == {"subject_contains": ["invoice"]}
    action = action_of(Type.REMOVE_INBOX_RULE)  # "Suspicious inbox manipulation rule" → investigation
    assert action.target["rule_id"] == hiding.rule_id
    decide_actions(action, actor=operator, approve=True)
    action.refresh_from_db()
    assert action.status == Status.COMPLETED, action.result
    rewritten = active_script(stack, BOB)
    assert '"Notes"' not in rewritten
    assert 'fileinto "News"' in rewritten


def test_soft_delete_moves_the_messages_to_quarantine_in_both_mailboxes_and_undo_moves_them_back(
    stack, operator, tenant
):
    from investigations.actions import decide_actions, request_undo

    message_id = stack.submit(ANN, "annpass", [BOB, CAROL], subject="Your invoice is overdue")
    from mailflow.models import MessageEvent

    event = wait_for(
        lambda: MessageEvent.objects.filter(internet_message_id=message_id).first(), message="event"
    )
    wait_for(
        lambda: all((("INBOX", message_id) in stack.message_ids(user)) for user in (BOB, CAROL)),
        message="delivery to bob and carol",
    )
    action = make_action(tenant, operator, ANN, Type.SOFT_DELETE_MESSAGES, event_ids=[event.event_id])
    decide_actions(action, actor=operator, approve=True)
    action.refresh_from_db()
    assert action.status == Status.COMPLETED, action.result
    for user in (BOB, CAROL):
        assert stack.message_ids(user) == [("Quarantine", message_id)]
    request_undo(action, actor=operator, comment="false positive")
    action.refresh_from_db()
    assert action.status == Status.UNDONE, action.result
    for user in (BOB, CAROL):
        assert stack.message_ids(user) == [("INBOX", message_id)]


def make_action(tenant, operator, address: str, kind: str, **target) -> RemediationAction:
    """An action proposed on an investigation an operator opened by hand (what an analyst adds)."""
    from datetime import timedelta

    from django.utils import timezone

    from investigations.services import start_investigation_by_hand

    mailbox = Mailbox.objects.get(address=address)
    investigation = start_investigation_by_hand(mailbox, actor=operator, comment="suspected compromise")
    return RemediationAction.objects.create(
        investigation=investigation,
        tenant=tenant,
        action_type=kind,
        target={"mailbox_id": mailbox.pk, **target},
        target_label=address,
        target_key=f"{kind}:{mailbox.pk}",
        expires_at=timezone.now() + timedelta(days=7),
    )


def test_disable_account_is_refused_by_dovecot_and_postfix_and_undo_lifts_both(stack, operator, tenant):
    from investigations.actions import decide_actions, request_undo
    from tests.enforcement.conftest import RunningServer

    policy = RunningServer().start(port=stack.policy_port)
    try:
        session = stack.imap_login(ANN, "annpass")
        action = make_action(tenant, operator, ANN, Type.DISABLE_ACCOUNT)
        decide_actions(action, actor=operator, approve=True)
        action.refresh_from_db()
        assert action.status == Status.COMPLETED, action.result
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            session.noop()  # kicked
        with pytest.raises(imaplib.IMAP4.error, match="disabled"):
            stack.imap_login(ANN, "annpass")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            stack.submit(ANN, "annpass", [BOB])
        with (  # webmail on a trusted network: the policy service refuses the sender
            pytest.raises(smtplib.SMTPRecipientsRefused) as refused,
            smtplib.SMTP("127.0.0.1", 10025, timeout=30) as smtp,
        ):
            smtp.sendmail(ANN, [BOB], "Subject: hi\r\n\r\nhello\r\n")
        assert "Access denied, bad outbound sender" in str(refused.value)

        request_undo(action, actor=operator, comment="owner verified")
        action.refresh_from_db()
        assert action.status == Status.UNDONE, action.result
        stack.imap_login(ANN, "annpass").logout()
        stack.submit(ANN, "annpass", [BOB])
    finally:
        policy.stop()


def test_revoke_sessions_kicks_the_users_imap_sessions(stack, operator, tenant):
    from investigations.actions import decide_actions

    session = stack.imap_login(CAROL, "carolpass")
    session.select("INBOX")
    action = make_action(tenant, operator, CAROL, Type.REVOKE_SESSIONS)
    decide_actions(action, actor=operator, approve=True)
    action.refresh_from_db()
    assert action.status == Status.COMPLETED, action.result
    assert "every open IMAP/POP3 session ended" in action.result
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        session.noop()
    assert any(call["command"] == "kick" for call in action.connector_calls)


def test_doveadm_down_is_a_clear_connector_error_and_the_action_is_retried(stack, operator, tenant, settings):
    from core.models import AuditEvent
    from investigations.actions import decide_actions
    from mailstack.models import MailstackConnection

    settings.ACTION_MAX_ATTEMPTS = 3  # in-process tasks: the retries run at once, not after the backoff
    MailstackConnection.objects.filter(pk=stack.connection.pk).update(
        doveadm_url="http://127.0.0.1:9/doveadm/v1"
    )
    action = make_action(tenant, operator, CAROL, Type.REVOKE_SESSIONS)
    decide_actions(action, actor=operator, approve=True)
    action.refresh_from_db()
    assert action.status == Status.FAILED
    assert action.result == (
        "Failed after 3 attempts; the last error: doveadm at http://127.0.0.1:9/doveadm/v1 did not answer: "
        "connection refused"
    )
    assert action.attempts == 3
    retries = AuditEvent.objects.for_target(action).filter(action="investigations.action.retry_scheduled")
    assert retries.count() == 2
