"""Detection never silently skips users (issue 15, row 1): a detector failing for one mailbox is logged,
recorded, retried for that mailbox alone, and does not stop the other mailboxes of the batch; date arithmetic
near datetime.min / max cannot overflow."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from alerts import detectors
from alerts.models import AlertPolicy, EvaluationFailure
from alerts.services import evaluate_mailboxes

from .builders import HOME, Telemetry, alerts_of, evaluate, mailbox_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_at_now")]

SENDING = AlertPolicy.Kind.SENDING_LIMIT
NOW = datetime(2031, 3, 4, 18, 0, tzinfo=UTC)
ALICE = f"alice@{HOME}"
BOB = f"bob@{HOME}"


@pytest.fixture
def burst(tenant):
    """Alice and Bob each sent one message to 600 outside recipients: both breach the hourly limit."""
    t = Telemetry(tenant)
    t.mailbox(ALICE, at=datetime(2031, 3, 1, 9, tzinfo=UTC))
    t.mailbox(BOB, at=datetime(2031, 3, 1, 9, tzinfo=UTC))
    t.ingest()
    t.message(ALICE, at=datetime(2031, 3, 4, 10, tzinfo=UTC), external=600)
    t.message(BOB, at=datetime(2031, 3, 4, 10, tzinfo=UTC), external=600)
    return t.ingest()


@pytest.fixture
def failing_for(monkeypatch, tenant):
    """Make the sending-limit detector raise whenever it is asked about the given address; the calls made
    (the addresses of each) are returned, and ``failures_left`` bounds how many times it raises."""
    real = detectors.DETECTORS[SENDING]
    state = {"calls": [], "failures_left": 10**6, "address": None}

    def detect(policy, mailboxes, start, end):
        addresses = sorted(m.address for m in mailboxes)
        state["calls"].append(addresses)
        if state["address"] in addresses and state["failures_left"] > 0:
            state["failures_left"] -= 1
            raise OverflowError("date value out of range")
        return real(policy, mailboxes, start, end)

    monkeypatch.setitem(detectors.DETECTORS, SENDING, detect)

    def arm(address: str, failures: int = 10**6) -> dict:
        state["address"], state["failures_left"] = address, failures
        return state

    return arm


def test_a_detector_failing_for_one_mailbox_still_raises_the_other_mailboxes_alerts(
    tenant, burst, failing_for, settings, caplog
):
    settings.DETECTION_MAX_RETRIES = 0
    failing_for(ALICE)
    with caplog.at_level(logging.ERROR, logger="alerts.services"):
        evaluate(tenant, burst)
    assert len(alerts_of(tenant, SENDING, BOB)) == 1
    assert alerts_of(tenant, SENDING, ALICE) == []
    [failure] = EvaluationFailure.objects.all()
    assert (failure.mailbox_address, failure.detector, failure.attempt, failure.final) == (
        ALICE,
        SENDING,
        0,
        True,
    )
    assert failure.error == "OverflowError: date value out of range"
    [record] = [r for r in caplog.records if "Detection sending_limit failed" in r.getMessage()]
    assert ALICE in record.getMessage() and "OverflowError" in record.getMessage()
    assert record.exc_info is not None


def test_the_failed_mailbox_alone_is_evaluated_again_and_gets_its_alert_once_the_detector_recovers(
    tenant, burst, failing_for, settings, django_capture_on_commit_callbacks
):
    settings.DETECTION_MAX_RETRIES = 3
    state = failing_for(ALICE, failures=2)  # the batch's call and Alice's own call fail; the retry works
    with django_capture_on_commit_callbacks(execute=True):
        evaluate(tenant, burst)
    assert state["calls"] == [[ALICE, BOB], [ALICE], [BOB], [ALICE]]
    assert len(alerts_of(tenant, SENDING, ALICE)) == 1
    assert len(alerts_of(tenant, SENDING, BOB)) == 1
    assert list(EvaluationFailure.objects.values_list("attempt", "final")) == [(0, False)]


def test_retries_are_bounded_and_the_last_failure_is_marked_as_given_up(
    tenant, burst, failing_for, settings, django_capture_on_commit_callbacks
):
    settings.DETECTION_MAX_RETRIES = 2
    failing_for(ALICE)
    with django_capture_on_commit_callbacks(execute=True):
        evaluate(tenant, burst)
    attempts = sorted(EvaluationFailure.objects.values_list("attempt", "final"))
    assert attempts == [(0, False), (1, False), (2, True)]
    assert len(alerts_of(tenant, SENDING, BOB)) == 1


def test_a_retry_is_sent_for_the_failed_mailbox_alone_after_a_backoff(
    tenant, burst, failing_for, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from celery.canvas import Signature

    settings.DETECTION_MAX_RETRIES = 3
    failing_for(ALICE)
    sent: list[tuple[list[int], int, int]] = []

    def record(self, *args, **kwargs):
        if self.task == "alerts.evaluate":
            sent.append((self.args[1], self.args[4], self.options["countdown"]))

    monkeypatch.setattr(Signature, "apply_async", record)
    with django_capture_on_commit_callbacks(execute=True):
        evaluate(tenant, burst)
    assert sent == [([mailbox_of(tenant, ALICE).pk], 1, 30)]
    with django_capture_on_commit_callbacks(execute=True):
        evaluate_mailboxes(tenant.pk, [mailbox_of(tenant, ALICE).pk], *burst.time_range, attempt=2)
    assert sent[-1] == ([mailbox_of(tenant, ALICE).pk], 3, 120)


def test_a_batch_range_at_the_ends_of_the_calendar_does_not_overflow(tenant, burst):
    start = datetime.min.replace(tzinfo=UTC)
    end = datetime.max.replace(tzinfo=UTC)
    evaluate_mailboxes(tenant.pk, sorted(burst.affected_mailbox_ids), start, end)
    assert not EvaluationFailure.objects.exists()
    assert len(alerts_of(tenant, SENDING, ALICE)) == 1
    assert len(alerts_of(tenant, SENDING, BOB)) == 1


def test_healthz_reports_evaluation_failures_of_the_last_hour(tenant, burst, failing_for, settings, client):
    settings.DETECTION_MAX_RETRIES = 0
    assert client.get("/healthz").json()["detection"] == {
        "status": "ok",
        "failures_last_hour": 0,
        "failures_given_up_last_hour": 0,
        "failures_total": 0,
        "last_failure_at": None,
        "last_failure": None,
    }
    failing_for(ALICE)
    evaluate(tenant, burst)
    detection = client.get("/healthz").json()["detection"]
    assert detection["status"] == "failing"
    assert (detection["failures_last_hour"], detection["failures_given_up_last_hour"]) == (1, 1)
    assert detection["failures_total"] == 1
    assert detection["last_failure_at"] == NOW.isoformat()
    assert ALICE in detection["last_failure"] and "OverflowError" in detection["last_failure"]
