"""The "Suspicious email sending patterns detected" detector (DESIGN section 5): (a) an hour far above the
user's own busiest hour of the previous 7 days and above a floor, after a learning period; (b) a day in which
much of the user's mail is verdicted spam, phish or malware, with a minimum count."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.detectors import sending_pattern
from alerts.models import AlertPolicy
from alerts.services import ensure_default_policies
from tests.builders.telemetry import CAROL, DAVE

from .builders import HOME, Telemetry, alerts_of, days_ago, evaluate, evidence_ids, mailbox_of, today

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_at_now")]

PATTERN = AlertPolicy.Kind.SENDING_PATTERN


@pytest.fixture
def telemetry(tenant) -> Telemetry:
    return Telemetry.with_mailboxes(tenant, CAROL, DAVE, at=days_ago(30))


def history(telemetry: Telemetry, user: str, *, busiest: int, first_days_ago: int = 10) -> None:
    """A user who started sending ``first_days_ago`` days ago and whose busiest hour of the last 7 days had
    ``busiest`` recipients (internal: the sending limits stay out of the way). Stored, not evaluated."""
    telemetry.message(user, at=days_ago(first_days_ago), internal=1)
    for day in range(1, 7):
        telemetry.message(user, at=days_ago(day), internal=busiest)
    telemetry.ingest()


def reasons(alert) -> dict[str, dict]:
    return {reason["rule"]: reason for reason in alert.details["reasons"]}


# ---------------------------------------------------------------------------------------------- (a) volume


def test_an_hour_above_three_times_the_busiest_hour_of_the_week_fires(tenant, telemetry):
    history(telemetry, CAROL, busiest=40)
    telemetry.message(CAROL, at=days_ago(7, 9) + timedelta(minutes=30), internal=900)  # 7 days and 30 min ago
    telemetry.ingest()
    history(telemetry, DAVE, busiest=40)

    spike = telemetry.message(CAROL, at=today(10), internal=121)
    telemetry.message(DAVE, at=today(10), internal=120)  # exactly three times: not above
    evaluate(tenant, telemetry.ingest())

    [alert] = alerts_of(tenant, PATTERN)
    assert alert.mailbox.address == CAROL
    assert evidence_ids(alert) == [spike]
    volume = reasons(alert)["volume_spike"]
    assert (volume["recipients"], volume["baseline"], volume["multiplier"], volume["floor"]) == (
        121,
        40,
        3,
        100,
    )
    assert volume["window"] == {"start": today(9).isoformat(), "end": today(10).isoformat()}


def test_a_busier_hour_days_ago_in_the_week_still_is_the_baseline(tenant, telemetry):
    history(telemetry, CAROL, busiest=10)
    history(telemetry, DAVE, busiest=10)
    telemetry.message(CAROL, at=days_ago(5), internal=200)  # in the week, before the last day
    telemetry.message(DAVE, at=days_ago(8), internal=200)  # before the week: no longer the baseline
    telemetry.ingest()
    telemetry.message(CAROL, at=today(10), internal=150)
    telemetry.message(DAVE, at=today(10), internal=150)
    evaluate(tenant, telemetry.ingest())

    [alert] = alerts_of(tenant, PATTERN)
    assert alert.mailbox.address == DAVE
    assert reasons(alert)["volume_spike"]["baseline"] == 10


def test_an_hour_must_also_exceed_the_floor(tenant, telemetry):
    history(telemetry, CAROL, busiest=10)
    telemetry.message(CAROL, at=today(10), internal=60)
    telemetry.message(CAROL, at=today(10, 30), internal=40)  # 100 in the hour: ten times the baseline
    evaluate(tenant, telemetry.ingest())
    assert alerts_of(tenant, PATTERN) == []

    last = telemetry.message(CAROL, at=today(10, 45), internal=1)
    evaluate(tenant, telemetry.ingest())
    [alert] = alerts_of(tenant, PATTERN)
    assert reasons(alert)["volume_spike"]["recipients"] == 101
    assert evidence_ids(alert)[-1] == last and alert.evidence_count == 3


def test_a_user_in_the_learning_period_is_not_compared_with_a_baseline(tenant, telemetry):
    history(telemetry, CAROL, busiest=10, first_days_ago=6)
    history(telemetry, DAVE, busiest=10, first_days_ago=8)
    telemetry.message(CAROL, at=today(10), internal=400)
    telemetry.message(DAVE, at=today(10), internal=400)
    evaluate(tenant, telemetry.ingest())
    assert [a.mailbox.address for a in alerts_of(tenant, PATTERN)] == [DAVE]


def test_the_hour_is_not_part_of_its_own_baseline(tenant, telemetry):
    history(telemetry, CAROL, busiest=30)
    telemetry.message(CAROL, at=today(9, 30), internal=60)
    telemetry.message(CAROL, at=today(10, 15), internal=60)  # 120 in (09:15, 10:15]: above 3 × 30 and 100
    evaluate(tenant, telemetry.ingest())
    [alert] = alerts_of(tenant, PATTERN)
    assert reasons(alert)["volume_spike"]["baseline"] == 30


def test_a_floor_of_zero_turns_the_volume_rule_off(tenant, telemetry, administrator):
    from alerts.services import update_policy

    update_policy(
        ensure_default_policies(tenant)[PATTERN], actor=administrator, thresholds={"hourly_floor": 0}
    )
    history(telemetry, CAROL, busiest=10)
    telemetry.message(CAROL, at=today(10), internal=900)
    evaluate(tenant, telemetry.ingest())
    assert alerts_of(tenant, PATTERN) == []


# ---------------------------------------------------------------------------------------------- (b) verdicts


def _send(telemetry: Telemetry, user: str, *, clean: int, bad: int, verdict: str = "phish") -> list[str]:
    """``clean`` messages from 08:00, then ``bad`` ones from 12:00 (so the share peaks at the last one)."""
    telemetry.messages(user, [today(8) + timedelta(minutes=i) for i in range(clean)], internal=1)
    return telemetry.messages(
        user, [today(12) + timedelta(minutes=i) for i in range(bad)], internal=1, verdict=verdict
    )


def test_a_third_of_a_days_mail_verdicted_phish_fires_with_the_bad_messages_as_evidence(tenant, telemetry):
    bad = _send(telemetry, CAROL, clean=23, bad=10)  # 10 of 33: 30.3 %
    _send(telemetry, DAVE, clean=24, bad=10)  # 10 of 34: 29.4 %
    evaluate(tenant, telemetry.ingest())

    [alert] = alerts_of(tenant, PATTERN)
    assert alert.mailbox.address == CAROL
    assert evidence_ids(alert) == bad
    share = reasons(alert)["malicious_share"]
    assert (share["bad"], share["sent"], share["threshold_percent"], share["min_count"]) == (10, 33, 30, 10)


def test_exactly_the_share_fires_but_not_below_the_minimum_count(tenant, telemetry):
    _send(telemetry, CAROL, clean=28, bad=12, verdict="malware")  # exactly 30 %
    _send(telemetry, DAVE, clean=0, bad=9, verdict="spam")  # 100 %, but only 9
    evaluate(tenant, telemetry.ingest())
    [alert] = alerts_of(tenant, PATTERN)
    assert alert.mailbox.address == CAROL and alert.evidence_count == 12


def test_bulk_mail_is_not_malicious(tenant, telemetry):
    _send(telemetry, CAROL, clean=0, bad=20, verdict="bulk")
    evaluate(tenant, telemetry.ingest())
    assert alerts_of(tenant, PATTERN) == []


def test_the_share_is_of_a_rolling_day(tenant, telemetry):
    telemetry.messages(CAROL, [days_ago(1, 11) + timedelta(minutes=i) for i in range(30)], internal=1)
    # 10 phish today from 12:00: yesterday's 30 clean messages from 11:00 have left the day by then.
    bad = telemetry.messages(
        CAROL, [today(12) + timedelta(minutes=i) for i in range(10)], internal=1, verdict="phish"
    )
    evaluate(tenant, telemetry.ingest())
    [alert] = alerts_of(tenant, PATTERN)
    assert evidence_ids(alert) == bad


def test_the_detector_reads_a_whole_batch_in_a_fixed_number_of_queries(
    tenant, telemetry, django_assert_max_num_queries
):
    users = [f"user{i}@{HOME}" for i in range(5)]
    for user in users:
        _send(telemetry, user, clean=5, bad=10)
    telemetry.ingest()
    mailboxes = [mailbox_of(tenant, u) for u in users]
    policy = AlertPolicy.objects.get(pk=ensure_default_policies(tenant)[PATTERN].pk)
    # overrides, the minute counters, first contacts, accepted domains, messages with links (issue 21), then
    # the messages and first messages of the users that reach a rule
    with django_assert_max_num_queries(7):
        detections = sending_pattern.detect(policy, mailboxes, today(8), today(13))
    assert sorted(d.mailbox_id for d in detections) == sorted(m.pk for m in mailboxes)
    assert all(len(d.evidence) == 10 for d in detections)
