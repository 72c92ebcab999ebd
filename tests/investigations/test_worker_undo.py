"""Undo with a real Celery worker (issue 14): forwarding outside → alert → investigation → "Turn off
forwarding" approved and executed → undone by the worker → the investigation is Pending action again, its
forwarding alert is open again, and the same clean-up is proposed again; approving it remediates again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from alerts.models import Alert, AlertPolicy
from investigations import actions
from investigations.models import Investigation, RemediationAction
from mailboxes.models import MailboxForwarding
from mailflow.ingest import ingest_events
from tests.conftest import wait_for

from .builders import ALICE, OUTSIDE

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

S = Investigation.Status
A = RemediationAction.Status


def _investigation(status: str):
    return Investigation.objects.filter(mailbox__address=ALICE, status=status).first()


def test_undo_reopens_and_proposes_again_with_a_real_worker(real_worker, tenant, operator):
    now = timezone.now()
    events = [
        {"id": "u-mbx", "type": "mailbox", "time": (now - timedelta(days=2)).isoformat(), "address": ALICE},
        {
            "id": "u-fwd",
            "type": "forwarding",
            "time": (now - timedelta(minutes=30)).isoformat(),
            "mailbox": ALICE,
            "forward_to": f"drop@{OUTSIDE}",
        },
    ]
    with transaction.atomic():
        assert ingest_events(tenant, events).ok

    investigation = wait_for(
        lambda: _investigation(S.PENDING_ACTION), timeout=60, message="the investigation to propose actions"
    )
    forwarding = investigation.actions.get(action_type="turn_off_forwarding")
    actions.decide_actions([forwarding], actor=operator, approve=True)
    others = list(investigation.actions.filter(status=A.PENDING))
    for action_type in {a.action_type for a in others}:
        actions.decide_actions(
            [a for a in others if a.action_type == action_type], actor=operator, approve=False, comment="no"
        )
    wait_for(lambda: _investigation(S.REMEDIATED), timeout=60, message="the approved action to remediate")
    alert = Alert.objects.get(mailbox__address=ALICE, policy__kind=AlertPolicy.Kind.FORWARDING)
    assert alert.status == Alert.Status.RESOLVED

    actions.request_undo(
        RemediationAction.objects.get(pk=forwarding.pk), actor=operator, comment="wrong user"
    )

    reopened = wait_for(lambda: _investigation(S.PENDING_ACTION), timeout=60, message="the undo to reopen")
    assert reopened.pk == investigation.pk
    assert MailboxForwarding.objects.get(mailbox__address=ALICE).forward_to == f"drop@{OUTSIDE}"
    alert.refresh_from_db()
    assert alert.status == Alert.Status.NEW
    again = reopened.actions.get(action_type="turn_off_forwarding", status=A.PENDING)
    assert again.pk != forwarding.pk

    actions.decide_actions([again], actor=operator, approve=True)
    wait_for(lambda: _investigation(S.REMEDIATED), timeout=60, message="the new proposal to remediate again")
    assert not MailboxForwarding.objects.get(mailbox__address=ALICE).forward_to
