"""The "Email sending limit exceeded" detector: rolling hourly and daily recipient limits, strict at the
boundary, per-mailbox overrides, scope, release counting from zero, folding and containment (DESIGN
section 5). Telemetry goes through the real ingest service; detection through ``evaluate_mailboxes``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from alerts.detectors import sending_limit
from alerts.models import Alert, AlertEvidence, AlertPolicy
from alerts.services import ensure_default_policies, evaluate_mailboxes, set_policy_override, update_policy
from restricted_users.models import CHECKLIST_ITEMS, Restriction
from restricted_users.services import release_user

from .builders import HOME, Telemetry, alerts_of, evaluate, evidence_ids, mailbox_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_at_now")]

SENDING = AlertPolicy.Kind.SENDING_LIMIT
# A Tuesday evening (UTC); the tests' mail is sent earlier today.
NOW = datetime(2031, 3, 4, 18, 0, tzinfo=UTC)
ALICE = f"alice@{HOME}"
BOB = f"bob@{HOME}"


def at(hh: int, mm: int = 0, ss: int = 0, *, day: int = 4) -> datetime:
    return datetime(2031, 3, day, hh, mm, ss, tzinfo=UTC)


@pytest.fixture
def telemetry(tenant) -> Telemetry:
    """Alice and Bob exist (a ``mailbox`` event each declares the home domain)."""
    t = Telemetry(tenant)
    t.mailbox(ALICE, at=at(9, day=1), department="Finance")
    t.mailbox(BOB, at=at(9, day=1), department="Marketing")
    t.ingest()
    return t


def policy(tenant) -> AlertPolicy:
    return ensure_default_policies(tenant)[SENDING]


def evaluate_range(tenant, addresses: list[str], start: datetime, end: datetime) -> None:
    evaluate_mailboxes(tenant.pk, [mailbox_of(tenant, a).pk for a in addresses], start, end)


# ---------------------------------------------------------------------------------------------- boundaries


def test_exactly_the_external_hourly_limit_does_not_fire_and_one_more_recipient_does(tenant, telemetry):
    telemetry.message(ALICE, at=at(10), external=250)
    telemetry.message(ALICE, at=at(10, 30), external=250)
    evaluate(tenant, telemetry.ingest())
    assert alerts_of(tenant, SENDING) == []

    one_more = telemetry.message(ALICE, at=at(10, 45), external=1)
    evaluate(tenant, telemetry.ingest())

    [alert] = alerts_of(tenant, SENDING, ALICE)
    assert alert.details["limit_name"] == "external_per_hour"
    assert (alert.details["limit"], alert.details["count"]) == (500, 501)
    assert alert.details["counts"] == {"external_hour": 501, "internal_hour": 0, "total_day": 501}
    assert alert.details["window"] == {"start": at(9, 45).isoformat(), "end": at(10, 45).isoformat()}
    assert alert.evidence_count == 3 and evidence_ids(alert)[-1] == one_more
    restriction = Restriction.objects.active().get(mailbox__address=ALICE)
    assert alert.restriction == restriction
    assert restriction.reason["limit_name"] == "external_per_hour" and restriction.reason["count"] == 501


def test_internal_recipients_have_their_own_hourly_limit(tenant, telemetry, administrator):
    update_policy(policy(tenant), actor=administrator, thresholds={"total_per_day": 5_000})
    telemetry.message(ALICE, at=at(10), internal=1_000)
    telemetry.message(ALICE, at=at(10, 5), external=500)
    evaluate(tenant, telemetry.ingest())
    assert alerts_of(tenant, SENDING) == []

    telemetry.message(ALICE, at=at(10, 10), internal=1)
    evaluate(tenant, telemetry.ingest())
    [alert] = alerts_of(tenant, SENDING, ALICE)
    assert (alert.details["limit_name"], alert.details["count"]) == ("internal_per_hour", 1_001)
    assert alert.details["counts"] == {"external_hour": 500, "internal_hour": 1_001, "total_day": 1_501}


def test_the_hourly_window_rolls_across_the_clock_hour(tenant, telemetry):
    telemetry.message(ALICE, at=at(10, 40), external=300)
    telemetry.message(ALICE, at=at(11, 20), external=201)
    telemetry.message(BOB, at=at(10), external=300)
    telemetry.message(BOB, at=at(11, 1), external=300)
    evaluate(tenant, telemetry.ingest())

    [alert] = alerts_of(tenant, SENDING)
    assert alert.mailbox.address == ALICE
    assert alert.details["window"] == {"start": at(10, 20).isoformat(), "end": at(11, 20).isoformat()}
    assert alert.details["count"] == 501


def test_a_window_exactly_an_hour_long_holds_only_its_last_message(tenant, telemetry):
    telemetry.message(ALICE, at=at(10), external=300)
    telemetry.message(ALICE, at=at(11), external=300)
    evaluate(tenant, telemetry.ingest())
    assert alerts_of(tenant, SENDING) == []


def test_the_daily_limit_counts_all_recipients_over_a_rolling_24_hours(tenant, telemetry):
    # 1,000 recipients from yesterday 16:00 to this morning 01:00, never more than 100 in an hour.
    for hour in range(10):
        telemetry.message(ALICE, at=at(16, day=3) + timedelta(hours=hour), external=40, internal=60)
    evaluate(tenant, telemetry.ingest())
    assert alerts_of(tenant, SENDING) == []

    telemetry.message(BOB, at=at(16, day=3), internal=1_000)
    telemetry.message(BOB, at=at(16, day=4), internal=1)  # exactly 24 hours later: yesterday's have left
    telemetry.message(ALICE, at=at(14), internal=1)  # within 24 hours of yesterday 16:00
    evaluate(tenant, telemetry.ingest())

    # The breach names all 11 messages of its day. Folding is by evidence time (aggregation window), so gaps
    # longer than the window may spread them over more than one alert; every one reports the breach.
    alerts = alerts_of(tenant, SENDING)
    assert {a.mailbox.address for a in alerts} == {ALICE}
    assert sum(a.evidence_count for a in alerts) == 11
    for alert in alerts:
        assert (alert.details["limit_name"], alert.details["count"]) == ("total_per_day", 1_001)
        assert alert.details["window"] == {"start": at(14, day=3).isoformat(), "end": at(14).isoformat()}


def test_a_late_message_fills_the_windows_after_it(tenant, telemetry):
    telemetry.message(ALICE, at=at(11, 20), external=300)
    evaluate(tenant, telemetry.ingest())
    assert alerts_of(tenant, SENDING) == []

    late = telemetry.message(ALICE, at=at(10, 40), external=201)  # arrives after, happened before
    evaluate(tenant, telemetry.ingest())
    [alert] = alerts_of(tenant, SENDING)
    assert alert.details["window"]["end"] == at(11, 20).isoformat()
    assert late in evidence_ids(alert)


# ------------------------------------------------------------------------------------------- scope, overrides


def test_an_excluded_department_or_mailbox_is_not_checked(tenant, telemetry, administrator):
    update_policy(
        policy(tenant), actor=administrator, exclude_departments=["Finance"], exclude_mailboxes=[BOB]
    )
    telemetry.message(ALICE, at=at(10), external=600)
    telemetry.message(BOB, at=at(10), external=600)
    evaluate(tenant, telemetry.ingest())
    assert alerts_of(tenant, SENDING) == []
    assert not Restriction.objects.exists()


def test_a_newsletter_owner_override_allows_more_until_it_expires(tenant, telemetry, administrator):
    set_policy_override(
        policy(tenant),
        actor=administrator,
        mailbox_address=ALICE,
        thresholds={"external_per_hour": 1_000, "total_per_day": 10_000},
        expires_at=at(0, day=6),
    )
    telemetry.message(ALICE, at=at(10), external=800)
    telemetry.message(BOB, at=at(10), external=800)
    evaluate(tenant, telemetry.ingest())
    assert [a.mailbox.address for a in alerts_of(tenant, SENDING)] == [BOB]

    with time_machine.travel(at(12, day=6), tick=False):
        burst = telemetry.message(ALICE, at=at(11, day=6), external=800)
        telemetry.ingest()
        evaluate_range(tenant, [ALICE], at(9), at(11, day=6))  # both bursts, after the override expired
        [alert] = alerts_of(tenant, SENDING, ALICE)
        assert (alert.details["limit"], alert.details["count"]) == (500, 800)
        assert evidence_ids(alert) == [burst]  # the burst sent under the override stays allowed
        assert Restriction.objects.active().filter(mailbox__address=ALICE).exists()


def test_the_detector_reads_the_mailbox_limit_at_each_window_end(tenant, telemetry, administrator):
    with time_machine.travel(at(9), tick=False):
        set_policy_override(
            policy(tenant),
            actor=administrator,
            mailbox_address=ALICE,
            thresholds={"external_per_hour": 1_000},
            expires_at=at(11, 30),
        )
    with time_machine.travel(at(12), tick=False):
        telemetry.message(ALICE, at=at(10, 15), external=450)
        at_eleven = telemetry.message(ALICE, at=at(11), external=450)  # 900 in the hour: under the override
        after_expiry = telemetry.message(ALICE, at=at(11, 45), external=100)  # 550 in the hour: over 500
        evaluate(tenant, telemetry.ingest())
    [alert] = alerts_of(tenant, SENDING, ALICE)
    assert (alert.details["limit"], alert.details["count"]) == (500, 550)
    assert alert.details["window"]["end"] == at(11, 45).isoformat()
    assert evidence_ids(alert) == [at_eleven, after_expiry]


# ---------------------------------------------------------------------------------------------- release


def _breach_release_and_breach_again(tenant, telemetry, administrator):
    """A breach at 10:00 restricts; released at 10:20; 400 more by 10:30 (901 in the hour, 400 since the
    release: under the limit), then 101 more at 10:40 (501 since the release: over)."""
    with time_machine.travel(at(10, 5), tick=False):
        telemetry.message(ALICE, at=at(10), external=501)
        evaluate(tenant, telemetry.ingest())
        [alert] = alerts_of(tenant, SENDING, ALICE)
        restriction = Restriction.objects.active().get(mailbox__address=ALICE)
    with time_machine.travel(at(10, 20), tick=False):
        release_user(
            restriction,
            actor=administrator,
            reason="Password reset, the account is clean.",
            attestations=dict.fromkeys(CHECKLIST_ITEMS, True),
        )
    with time_machine.travel(at(10, 50), tick=False):
        telemetry.message(ALICE, at=at(10, 30), external=400)
        evaluate(tenant, telemetry.ingest())
        alert.refresh_from_db()
        assert alert.evidence_count == 1
        assert not Restriction.objects.active().filter(mailbox__address=ALICE).exists()

        over = telemetry.message(ALICE, at=at(10, 40), external=101)
        evaluate(tenant, telemetry.ingest())
        alert.refresh_from_db()
        assert alert.evidence_count == 3 and over in evidence_ids(alert)
    return alert, restriction


def test_mail_sent_after_a_release_counts_from_zero_and_a_new_breach_restricts_again(
    tenant, telemetry, administrator
):
    _, released = _breach_release_and_breach_again(tenant, telemetry, administrator)
    # The sending-limit policy re-restricts after a release by default (issue 14).
    again = Restriction.objects.active(at(10, 50)).get(mailbox__address=ALICE)
    assert again.pk != released.pk


def test_a_policy_set_not_to_re_restrict_after_a_release_only_alerts_the_same_day(
    tenant, telemetry, administrator
):
    ensure_default_policies(tenant)
    AlertPolicy.objects.filter(tenant=tenant, kind=SENDING).update(rerestrict_after_release=False)
    alert, _ = _breach_release_and_breach_again(tenant, telemetry, administrator)
    assert alert.details["not_restricted"].startswith("released today")
    assert not Restriction.objects.active(at(10, 50)).filter(mailbox__address=ALICE).exists()


# ---------------------------------------------------------------------------------------------- aggregation


def test_a_burst_of_a_thousand_messages_is_one_alert_with_a_count_of_a_thousand(tenant, telemetry):
    times = [at(10) + timedelta(seconds=3 * i) for i in range(1_000)]
    ids = telemetry.messages(ALICE, times, external=1)
    batch = telemetry.ingest()
    evaluate(tenant, batch)

    [alert] = alerts_of(tenant, SENDING, ALICE)
    assert alert.evidence_count == 1_000
    assert (alert.first_activity_at, alert.last_activity_at) == (times[0], times[-1])
    assert alert.details["count"] == 501 and alert.details["window"]["end"] == times[500].isoformat()
    assert set(evidence_ids(alert)) == set(ids)

    before = (Alert.objects.count(), AlertEvidence.objects.count(), Restriction.objects.count())
    evaluate(tenant, batch)
    alert.refresh_from_db()
    assert (Alert.objects.count(), AlertEvidence.objects.count(), Restriction.objects.count()) == before
    assert alert.evidence_count == 1_000


def test_the_detector_reads_a_whole_batch_in_a_fixed_number_of_queries(
    tenant, telemetry, django_assert_max_num_queries
):
    users = [f"user{i}@{HOME}" for i in range(6)]
    for user in users:
        telemetry.messages(user, [at(10) + timedelta(minutes=m) for m in range(0, 60, 5)], external=50)
    telemetry.ingest()
    mailboxes = [mailbox_of(tenant, u) for u in users]
    policy_ = AlertPolicy.objects.get(pk=policy(tenant).pk)
    # overrides, the minute counters of the batch's users, then messages and releases of those over a limit
    with django_assert_max_num_queries(4):
        detections = sending_limit.detect(policy_, mailboxes, at(10), at(11))
    assert sorted(d.mailbox_id for d in detections) == sorted(m.pk for m in mailboxes)
    assert all(len(d.evidence) == 12 and d.breach.count == 550 for d in detections)


def test_users_whose_minute_counters_stay_within_the_limits_have_no_message_read(
    tenant, telemetry, django_assert_max_num_queries
):
    users = [f"quiet{i}@{HOME}" for i in range(6)]
    for user in users:
        telemetry.messages(user, [at(10) + timedelta(minutes=m) for m in range(0, 60, 5)], external=40)
    telemetry.ingest()  # 480 external recipients in the hour: under the 500 limit
    mailboxes = [mailbox_of(tenant, u) for u in users]
    policy_ = AlertPolicy.objects.get(pk=policy(tenant).pk)
    with django_assert_max_num_queries(2):  # the overrides and the counters; no message read
        assert sending_limit.detect(policy_, mailboxes, at(10), at(11)) == []
