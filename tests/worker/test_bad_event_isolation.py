"""On a real worker: one bad event, or one mailbox whose detection fails, does not stop the other users'
alerts (issue 15, row 1). Before, a batch holding an event dated 9999-12-31 was stored and its
``alerts.evaluate`` died on ``end + DAY`` for every user of the batch, never retried."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction

from alerts.models import Alert, AlertPolicy, EvaluationFailure, PolicyOverride
from alerts.services import ensure_default_policies
from mailflow.ingest import LENIENT, ingest_events
from soc_console.celery import app
from tests.conftest import wait_for, wait_until_worker_idle

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

HOME = "contoso.example"
MALLORY = f"mallory@{HOME}"
ALICE = f"alice@{HOME}"


def burst(sender: str, prefix: str) -> list[dict]:
    """51 messages to 10 outside recipients each in the last hour: 510 external recipients, over the limit."""
    now = datetime.now(UTC).replace(microsecond=0)
    return [
        {
            "type": "message",
            "id": f"{prefix}-{n}",
            "time": (now - timedelta(minutes=50) + timedelta(seconds=30 * n)).isoformat(),
            "sender": sender,
            "recipients": [f"victim{n}-{r}@fabrikam.example" for r in range(10)],
            "subject": "Your mailbox is almost full",
            "verdict": "phish",
        }
        for n in range(51)
    ]


def directory() -> list[dict]:
    at = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    return [{"type": "mailbox", "id": f"mbx-{a}", "time": at, "address": a} for a in (MALLORY, ALICE)]


def sending_alert(address: str):
    return Alert.objects.filter(policy__kind=AlertPolicy.Kind.SENDING_LIMIT, mailbox__address=address).first()


def test_bad_events_in_a_connector_batch_are_rejected_alone_and_the_worker_raises_the_others_alerts(
    real_worker, tenant
):
    bad = [
        {**burst(ALICE, "bad-time")[0], "time": "9999-12-31T23:59:59+00:00"},
        {**burst(ALICE, "bad-nul")[0], "subject": "invoice\x00"},
        {**burst(ALICE, "bad-surrogate")[0], "subject": "\ud800"},
    ]
    with transaction.atomic():
        result = ingest_events(
            tenant, [*directory(), *bad, *burst(MALLORY, "m")], mode=LENIENT, source="connector"
        )
    assert (result.rejected, result.accepted) == (3, 53)
    alert = wait_for(lambda: sending_alert(MALLORY), message="Mallory's sending-limit alert from the worker")
    assert alert.evidence_count == 51
    assert not EvaluationFailure.objects.exists()


def test_a_mailbox_whose_detection_fails_is_retried_alone_while_the_others_get_their_alerts(
    real_worker, tenant
):
    with transaction.atomic():
        ingest_events(tenant, directory())
    # The directory batch's own evaluation (Alice is a mailbox it touched) must be over before her limits
    # break, else it records a second failure of its own (seen in CI).
    wait_until_worker_idle(app)
    policy = ensure_default_policies(tenant)[AlertPolicy.Kind.SENDING_LIMIT]
    # A row the services would refuse (written by hand, or before validation): Alice's limits do not parse.
    broken = PolicyOverride.objects.create(
        policy=policy, mailbox_address=ALICE, thresholds={"external_per_hour": "x"}
    )
    with transaction.atomic():
        ingest_events(tenant, [*burst(ALICE, "a"), *burst(MALLORY, "m")])

    wait_for(lambda: sending_alert(MALLORY), message="Mallory's alert, although Alice's detection failed")
    failure = wait_for(lambda: EvaluationFailure.objects.first(), message="Alice's failure, recorded")
    assert (failure.mailbox_address, failure.detector, failure.attempt) == (ALICE, "sending_limit", 0)
    assert "ValueError" in failure.error
    assert sending_alert(ALICE) is None

    broken.delete()  # the retry (30 s later, Alice alone) now succeeds
    alert = wait_for(lambda: sending_alert(ALICE), timeout=75, message="Alice's alert from the retry")
    assert alert.evidence_count == 51
    assert EvaluationFailure.objects.count() == 1
