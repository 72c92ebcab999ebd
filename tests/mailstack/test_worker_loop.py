"""The whole loop on the real servers with a real Celery worker: a message submitted through Postfix is
stored by the worker from Rspamd's export; a Sieve redirect the user uploads is read by the worker, raises
the forwarding alert, the investigation proposes turning it off, the approved action rewrites the script on
Dovecot, and the undo puts it back."""

from __future__ import annotations

import pytest

from alerts.models import Alert
from investigations.models import RemediationAction
from mailflow.models import MessageEvent
from tests.conftest import wait_for

from .test_actions import REDIRECT, active_script, upload_with_managesieve

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

ANN = "ann@example.test"
Status = RemediationAction.Status


def test_the_forwarding_loop_runs_on_the_worker_against_the_real_servers(stack, real_worker, operator):
    from investigations.actions import decide_actions, request_undo
    from mailstack.tasks import read_sieve

    message_id = stack.submit(ANN, "annpass", ["bob@example.test"], subject="Minutes")
    event = wait_for(
        lambda: MessageEvent.objects.filter(internet_message_id=message_id).first(),
        message="the worker's event",
    )
    assert event.verdict == "clean"

    upload_with_managesieve(ANN, "annpass", "rules", REDIRECT)
    read_sieve.delay(stack.connection.pk)
    alert = wait_for(
        lambda: Alert.objects.filter(mailbox__address=ANN, policy__kind="forwarding").first(),
        message="the forwarding alert",
    )
    assert "drop@elsewhere.test" in str(alert.details)
    action = wait_for(
        lambda: RemediationAction.objects.filter(
            action_type=RemediationAction.Type.TURN_OFF_FORWARDING
        ).first(),
        message="the proposed action",
    )
    decide_actions(action, actor=operator, approve=True)
    wait_for(
        lambda: RemediationAction.objects.filter(pk=action.pk, status=Status.COMPLETED).exists(),
        message="the action completed by the worker",
    )
    assert "redirect" not in active_script(stack, ANN)

    action.refresh_from_db()
    request_undo(action, actor=operator, comment="the user's own forwarding")
    wait_for(
        lambda: RemediationAction.objects.filter(pk=action.pk, status=Status.UNDONE).exists(),
        message="the undo by the worker",
    )
    assert 'redirect :copy "drop@elsewhere.test"' in active_script(stack, ANN)
