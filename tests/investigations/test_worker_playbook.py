"""Production wiring, no manual step: an ingested phishing burst is detected, restricts the sender, opens an
investigation and runs the playbook in a real Celery worker, ending "Pending action" with its proposals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from investigations.models import Investigation
from mailflow.ingest import ingest_events
from tests.conftest import wait_for

from .builders import ALICE, HOME, OUTSIDE

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_an_ingested_phishing_burst_ends_pending_action_without_a_manual_step(real_worker, tenant):
    now = timezone.now()
    events = [
        {"id": "w-mbx", "type": "mailbox", "time": (now - timedelta(days=1)).isoformat(), "address": ALICE}
    ]
    for n in range(60):  # 60 copies × 10 external recipients in 30 minutes: over 500 external in an hour
        events.append(
            {
                "id": f"w-msg-{n}",
                "type": "message",
                "time": (now - timedelta(minutes=40) + timedelta(seconds=30 * n)).isoformat(),
                "sender": ALICE,
                "recipients": [f"r{n}-{i}@{OUTSIDE}" for i in range(10)] + [f"c{i}@{HOME}" for i in range(2)],
                "subject": "Your mailbox is full",
                "verdict": "phish",
                "urls": [f"https://login-verify.example/auth?t={n}"],
                "body_hash": "lure",
            }
        )
    with transaction.atomic():
        result = ingest_events(
            tenant, events
        )  # on commit it enqueues alerts.evaluate: nothing else is done here
        assert result.ok, result.summary()
        assert not Investigation.objects.exists()

    expected = {
        "Email sending limit exceeded",
        "User restricted from sending email",
        "Suspicious email sending patterns detected",
    }

    def concluded():
        """Settled: every alert the burst raises correlated into the investigation, and its last run done."""
        investigation = Investigation.objects.filter(mailbox__address=ALICE).first()
        if investigation is None or investigation.status != Investigation.Status.PENDING_ACTION:
            return None
        if set(investigation.alerts.values_list("title", flat=True)) != expected:
            return None
        return (
            investigation
            if investigation.actions.filter(action_type="soft_delete_messages").exists()
            else None
        )

    investigation = wait_for(concluded, timeout=60, message="the investigation to reach Pending action")
    assert Investigation.objects.filter(mailbox__address=ALICE).count() == 1
    cluster = investigation.clusters.get(verdict="malicious")
    assert (cluster.message_count, cluster.internal_recipients) == (60, 120)
    soft_delete = investigation.actions.get(action_type="soft_delete_messages")
    assert soft_delete.status == "pending" and soft_delete.target["internal_copies"] == 120
    assert investigation.verdict == Investigation.Verdict.COMPROMISED
    assert investigation.runs.filter(outcome="failed").count() == 0
