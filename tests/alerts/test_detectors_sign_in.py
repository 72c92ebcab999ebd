"""The "Activity from infrequent country / impossible travel" detector (DESIGN section 5): a country unseen in
30 days (after a 7-day learning period), travel faster than 900 km/h between country centroids, legacy
protocols. Sign-ins arrive as ingest events; evidence is named by their event ids."""

from __future__ import annotations

import pytest

from alerts.detectors import geo, sign_in
from alerts.models import AlertPolicy
from alerts.services import ensure_default_policies
from tests.builders.telemetry import ALICE, BOB

from .builders import HOME, Telemetry, alerts_of, days_ago, evaluate, evidence_ids, mailbox_of, today

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_at_now")]

SIGN_IN = AlertPolicy.Kind.SIGN_IN


@pytest.fixture
def telemetry(tenant) -> Telemetry:
    return Telemetry.with_mailboxes(tenant, ALICE, BOB, at=days_ago(60))


def daily_sign_ins(telemetry: Telemetry, user: str, *, since_days: int, country: str = "GB") -> None:
    """A user signing in every morning from ``country`` since ``since_days`` ago. Stored, not evaluated."""
    for day in range(since_days, 0, -1):
        telemetry.sign_in(user, at=days_ago(day), country=country)
    telemetry.ingest()


def rules(alert) -> list[str]:
    return [reason["rule"] for reason in alert.details["reasons"]]


# ---------------------------------------------------------------------------------------------- countries


def test_a_sign_in_from_a_new_country_fires_once_the_user_has_a_week_of_history(tenant, telemetry):
    daily_sign_ins(telemetry, ALICE, since_days=20)
    daily_sign_ins(telemetry, BOB, since_days=5)  # still learning
    event = telemetry.sign_in(ALICE, at=today(10), country="NG")
    telemetry.sign_in(BOB, at=today(10), country="NG")
    evaluate(tenant, telemetry.ingest())

    [alert] = alerts_of(tenant, SIGN_IN)
    assert alert.mailbox.address == ALICE
    assert evidence_ids(alert) == [event] and alert.evidence.get().kind == "sign_in"
    [reason] = alert.details["reasons"]
    assert (reason["rule"], reason["country"], reason["sign_in"]) == ("infrequent_country", "NG", event)


def test_a_country_last_seen_more_than_30_days_ago_is_infrequent_again(tenant, telemetry):
    daily_sign_ins(telemetry, ALICE, since_days=45)
    daily_sign_ins(telemetry, BOB, since_days=45)
    # One batch: a trip to the US a month ago (new then), and the US again today.
    alice_then = telemetry.sign_in(ALICE, at=days_ago(31), country="US")
    bob_then = telemetry.sign_in(BOB, at=days_ago(29), country="US")
    alice_now = telemetry.sign_in(ALICE, at=today(10), country="US")
    telemetry.sign_in(BOB, at=today(10), country="US")
    evaluate(tenant, telemetry.ingest())

    alice = [event for alert in alerts_of(tenant, SIGN_IN, ALICE) for event in evidence_ids(alert)]
    bob = [event for alert in alerts_of(tenant, SIGN_IN, BOB) for event in evidence_ids(alert)]
    assert alice == [alice_then, alice_now]  # 31 days: infrequent again
    assert bob == [bob_then]  # 29 days: still seen


def test_a_country_seen_in_an_earlier_batch_of_the_look_back_is_not_infrequent(tenant, telemetry):
    daily_sign_ins(telemetry, ALICE, since_days=45)
    daily_sign_ins(telemetry, BOB, since_days=45)
    telemetry.sign_in(ALICE, at=days_ago(31), country="US")
    telemetry.sign_in(BOB, at=days_ago(29), country="US")
    telemetry.ingest()
    # A later batch: the detector reads a day of sign-ins, and the look-back before it for the US alone.
    alice_now = telemetry.sign_in(ALICE, at=today(10), country="US")
    telemetry.sign_in(BOB, at=today(10), country="US")
    evaluate(tenant, telemetry.ingest())

    [alert] = alerts_of(tenant, SIGN_IN)
    assert alert.mailbox.address == ALICE and evidence_ids(alert) == [alice_now]


def test_failed_sign_ins_neither_alert_nor_count_as_seen(tenant, telemetry):
    daily_sign_ins(telemetry, ALICE, since_days=20)
    telemetry.sign_in(ALICE, at=today(9), country="RU", result="failure")
    evaluate(tenant, telemetry.ingest())
    assert alerts_of(tenant, SIGN_IN) == []

    success = telemetry.sign_in(ALICE, at=today(10), country="RU")
    evaluate(tenant, telemetry.ingest())
    [alert] = alerts_of(tenant, SIGN_IN)
    assert evidence_ids(alert) == [success]


# ---------------------------------------------------------------------------------------------- travel


def test_two_sign_ins_too_far_apart_for_the_time_between_them_are_impossible_travel(tenant, telemetry):
    london = telemetry.sign_in(ALICE, at=today(10), country="GB")
    telemetry.sign_in(BOB, at=today(10), country="GB")
    telemetry.ingest()  # the earlier sign-ins came in an earlier batch
    sydney = telemetry.sign_in(ALICE, at=today(12), country="AU")
    telemetry.sign_in(BOB, at=today(12), country="FR")  # about 1,100 km in 2 hours: possible
    evaluate(tenant, telemetry.ingest())

    [alert] = alerts_of(tenant, SIGN_IN)
    assert alert.mailbox.address == ALICE
    assert evidence_ids(alert) == [sydney]  # the sign-in that could not have happened; the details name both
    [reason] = alert.details["reasons"]
    assert (reason["rule"], reason["from"], reason["to"]) == ("impossible_travel", "GB", "AU")
    assert reason["speed_kmh"] > 900 and reason["sign_ins"] == [london, sydney]


def test_sign_ins_from_one_country_are_never_travel(tenant, telemetry):
    telemetry.sign_in(ALICE, at=today(10), country="US")
    telemetry.sign_in(ALICE, at=today(10), country="US", ip="198.51.100.7")
    evaluate(tenant, telemetry.ingest())
    assert alerts_of(tenant, SIGN_IN) == []


def test_a_late_sign_in_is_compared_with_the_one_after_it(tenant, telemetry):
    tokyo = telemetry.sign_in(ALICE, at=today(12), country="JP")
    telemetry.ingest()
    london = telemetry.sign_in(ALICE, at=today(10), country="GB")  # arrives late
    evaluate(tenant, telemetry.ingest())
    [alert] = alerts_of(tenant, SIGN_IN)
    assert evidence_ids(alert) == [tokyo]
    assert alert.details["reasons"][0]["sign_ins"] == [london, tokyo]


def test_the_country_centroids_give_plausible_distances():
    assert 900 < geo.country_distance_km("GB", "FR") < 1_300
    assert 14_000 < geo.country_distance_km("GB", "AU") < 16_500
    assert geo.country_distance_km("GB", "XX") is None
    assert len(geo.CENTROIDS) >= 60


# ---------------------------------------------------------------------------------------------- protocols


def test_a_successful_legacy_protocol_sign_in_fires(tenant, telemetry):
    imap = telemetry.sign_in(ALICE, at=today(10), country="GB", client_app="imap")
    telemetry.sign_in(BOB, at=today(10), country="GB", client_app="pop", result="failure")
    telemetry.sign_in(BOB, at=today(10, 5), country="GB", client_app="eas")
    evaluate(tenant, telemetry.ingest())
    [alert] = alerts_of(tenant, SIGN_IN)
    assert alert.mailbox.address == ALICE and evidence_ids(alert) == [imap]
    assert alert.details["reasons"][0] == {
        "rule": "legacy_protocol",
        "sign_in": imap,
        "client_app": "imap",
        "at": today(10).isoformat(),
    }


def test_re_running_adds_nothing_and_a_batch_costs_a_fixed_number_of_queries(
    tenant, telemetry, django_assert_max_num_queries
):
    users = [f"user{i}@{HOME}" for i in range(5)]
    for user in users:
        telemetry.sign_in(user, at=today(10), country="GB", client_app="smtp")
        telemetry.sign_in(user, at=today(10, 30), country="JP")
    batch = telemetry.ingest()
    evaluate(tenant, batch)
    alerts = alerts_of(tenant, SIGN_IN)
    assert len(alerts) == 5 and all(a.evidence_count == 2 for a in alerts)  # the SMTP and the Tokyo sign-in
    assert all(rules(a) == ["legacy_protocol", "impossible_travel"] for a in alerts)
    evaluate(tenant, batch)
    assert [(a.pk, a.evidence_count) for a in alerts_of(tenant, SIGN_IN)] == [(a.pk, 2) for a in alerts]

    policy = AlertPolicy.objects.get(pk=ensure_default_policies(tenant)[SIGN_IN].pk)
    mailboxes = [mailbox_of(tenant, u) for u in users]
    # The overrides, the sign-ins near the batch, the first sign-ins, the look-back of the users with a
    # travel pair and the last sightings of countries the near read has not seen: five, whatever the users.
    with django_assert_max_num_queries(5):
        detections = sign_in.detect(policy, mailboxes, today(10), today(11))
    assert len(detections) == 5
