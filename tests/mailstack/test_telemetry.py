"""Telemetry from the real servers: Dovecot's authentication policy and Rspamd's metadata exporter call the
console (``live_server``), which stores sign-ins and messages and enforces at Dovecot and Postfix."""

from __future__ import annotations

import imaplib
import smtplib
import time

import pytest

from mailboxes.models import SignIn
from mailflow.models import MessageEvent
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ANN = "ann@example.test"


def test_an_imap_login_from_a_foreign_address_is_a_sign_in_with_its_country(stack):
    client = stack.imap_login(ANN, "annpass", originating_ip="81.2.69.142")
    client.logout()
    sign_in = wait_for(lambda: SignIn.objects.filter(mailbox__address=ANN).first(), message="the sign-in")
    assert (sign_in.ip, sign_in.country, sign_in.client_app, sign_in.result) == (
        "81.2.69.142",
        "GB",
        "imap",
        "success",
    )


def test_a_failure_burst_tarpits_the_next_login(stack, settings):
    settings.MAILSTACK_TARPIT_AFTER_FAILURES = 3
    settings.MAILSTACK_TARPIT_SECONDS = 2
    for _ in range(3):
        with pytest.raises(imaplib.IMAP4.error):
            stack.imap_login(ANN, "wrong")
    wait_for(lambda: SignIn.objects.filter(result="failure").count() == 3, message="three failures")
    began = time.monotonic()
    stack.imap_login(ANN, "annpass").logout()
    assert time.monotonic() - began >= 2.0


def test_a_disabled_account_is_refused_by_dovecot_itself(stack, tenant):
    from mailstack.services import set_account_disabled

    set_account_disabled(tenant, ANN, True)
    with pytest.raises(imaplib.IMAP4.error, match="disabled by the security team"):
        stack.imap_login(ANN, "annpass")
    set_account_disabled(tenant, ANN, False)
    stack.imap_login(ANN, "annpass").logout()


def test_a_submission_is_scanned_by_rspamd_and_arrives_as_a_message_event(stack):
    message_id = stack.submit(ANN, "annpass", ["bob@example.test"], subject="Quarterly numbers")
    event = wait_for(
        lambda: MessageEvent.objects.filter(internet_message_id=message_id).first(), message="the event"
    )
    assert event.event_id.startswith("postfix:")
    assert event.sender.address == ANN
    assert event.recipients == ["bob@example.test"]
    assert event.subject == "Quarterly numbers"
    assert event.verdict == "clean"


def test_a_message_rspamd_rejects_arrives_as_spam(stack):
    with pytest.raises(smtplib.SMTPDataError) as refused:
        stack.submit(
            ANN, "annpass", ["x@elsewhere.test"], subject="Buy now", headers={"X-Test-Spam": "reject"}
        )
    assert refused.value.smtp_code == 554
    event = wait_for(lambda: MessageEvent.objects.filter(subject="Buy now").first(), message="the spam event")
    assert event.verdict == "spam"


def test_a_burst_over_the_limit_restricts_the_user_and_the_next_submission_is_refused(stack, administrator):
    """Through Postfix with SMTP AUTH: the policy service counts, restricts and refuses; each accepted
    message is one event although both the policy service and Rspamd report it."""
    from alerts.models import AlertPolicy
    from alerts.services import ensure_default_policies, update_policy
    from restricted_users.models import Restriction
    from tests.enforcement.conftest import RunningServer

    policy = ensure_default_policies(stack.connection.tenant)[AlertPolicy.Kind.SENDING_LIMIT]
    update_policy(
        policy,
        actor=administrator,
        thresholds={"external_per_hour": 3, "internal_per_hour": 3, "total_per_day": 20},
        action=AlertPolicy.Action.RESTRICT_UNTIL_NEXT_DAY,
    )
    server = RunningServer().start(port=stack.policy_port)
    try:
        sent = [
            stack.submit(ANN, "annpass", [f"r{i}@elsewhere.test"], subject=f"Offer {i}") for i in range(3)
        ]
        with pytest.raises((smtplib.SMTPDataError, smtplib.SMTPRecipientsRefused)) as over:
            stack.submit(ANN, "annpass", ["r3@elsewhere.test"], subject="Offer 3")
        assert "Access denied, bad outbound sender" in str(over.value)
        wait_for(
            lambda: Restriction.objects.active().filter(mailbox__address=ANN).exists(),
            message="the restriction",
        )
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            stack.submit(ANN, "annpass", ["bob@example.test"], subject="After")
        assert "Access denied, bad outbound sender" in str(refused.value)

        def merged():
            rows = list(MessageEvent.objects.filter(internet_message_id__in=sent))
            both = [r for r in rows if r.size is not None and r.subject and r.verdict == "clean"]
            return len(both) == 3 and rows

        rows = wait_for(merged, message="one event per message from the policy service and Rspamd")
        assert len(rows) == 3
        assert all(row.event_id.startswith("postfix:") and len(row.event_id) > 20 for row in rows)  # long ids
    finally:
        server.stop()
