"""The policy service behind a real Postfix (a private instance per module, RECIPES.md): mail under the limit
flows, the message over it is refused and the user restricted (database row and alert from a real worker),
release lets mail out again, and a stopped policy service never stops mail.

A missing Postfix is a failure, not a skip: ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import tempfile
from pathlib import Path

import pytest

from restricted_users.models import Restriction
from tests.conftest import wait_for

from .conftest import ALL_ATTESTED, DOMAIN
from .postfix import POSTFIX, PostfixInstance, free_port, smtp_code

pytestmark = pytest.mark.mailserver

ALICE = f"alice@{DOMAIN}"


@pytest.fixture(scope="module")
def postfix():
    if not os.access(POSTFIX, os.X_OK):
        pytest.fail(f"{POSTFIX} is missing: install postfix (see .ci/run) to run the enforcement tests")
    # Not under pytest's tmp_path: its parents are mode 700; Postfix's daemons (user postfix) must reach it.
    root = Path(tempfile.mkdtemp(prefix="soc-postfix-"))
    root.chmod(0o755)
    instance = PostfixInstance(root, free_port())
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def policy_service(postfix, running_server, sending_policy):
    """The policy service on the port this Postfix asks, trusting 127.0.0.0/8 like its mynetworks; started
    after the policy's limits are lowered (it reads them at start, then every minute)."""
    return running_server(port=postfix.policy_port)


def refused(postfix: PostfixInstance, sender: str, recipients: list[str]) -> tuple[int, str]:
    with pytest.raises((smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError)) as caught:
        postfix.send(sender, recipients)
    return smtp_code(caught.value)


@pytest.mark.django_db(transaction=True)
def test_mail_under_the_limit_is_accepted_and_recorded(postfix, policy_service, make_mailbox, sending_policy):
    from mailflow.models import MessageEvent

    alice = make_mailbox(ALICE)
    assert postfix.send(ALICE, ["one@elsewhere.example", f"bob@{DOMAIN}"]) == {}
    event = wait_for(lambda: MessageEvent.objects.filter(sender=alice).first(), message="the message event")
    assert event.event_id.startswith("postfix:")
    assert (event.external_count, event.internal_count) == (1, 1)


@pytest.mark.django_db(transaction=True)
def test_over_the_limit_restricts_alerts_and_refuses_until_released(
    postfix, policy_service, make_mailbox, sending_policy, administrator, real_worker
):
    from alerts.models import Alert
    from restricted_users.services import release_user

    alice = make_mailbox(ALICE)
    for i in range(5):  # external_per_hour is 5
        assert postfix.send(ALICE, [f"r{i}@elsewhere.example"]) == {}
    code, text = refused(postfix, ALICE, ["r5@elsewhere.example"])
    # Postfix keeps the policy service's code and text but puts its own address-class detail in the enhanced
    # status (5.0.0 at end-of-data, 5.1.2 "Recipient address rejected" at RCPT) instead of 5.1.8.
    assert code == 550 and text.endswith("Access denied, bad outbound sender")
    restriction = wait_for(
        lambda: Restriction.objects.active().filter(mailbox=alice).first(), message="the restriction"
    )
    assert restriction.source == Restriction.Source.POLICY_SERVICE
    assert wait_for(
        lambda: Alert.objects.filter(mailbox=alice, restriction=restriction).exists(), message="the alert"
    )
    code, text = refused(postfix, ALICE, [f"bob@{DOMAIN}"])  # refused at RCPT now
    assert code == 550 and text.endswith("Recipient address rejected: Access denied, bad outbound sender")

    release_user(restriction, actor=administrator, reason="password reset", attestations=ALL_ATTESTED)
    assert postfix.send(ALICE, ["after@elsewhere.example"]) == {}


@pytest.mark.django_db(transaction=True)
def test_a_stopped_policy_service_does_not_stop_mail(postfix, running_server, make_mailbox, sending_policy):
    server = running_server(port=postfix.policy_port)
    server.stop()
    make_mailbox(ALICE)
    for i in range(7):  # beyond the limit: nobody is counting
        assert postfix.send(ALICE, [f"r{i}@elsewhere.example"]) == {}
