"""The directory detectors (DESIGN section 5): suspicious (external) forwarding, creation of forwarding /
redirect rules, inbox manipulation rules and delegations. Changes arrive as ingest events; evidence is named
by their event ids."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.detectors import forwarding, forwarding_rule, inbox_manipulation
from alerts.models import Alert, AlertEvidence, AlertPolicy
from alerts.services import ensure_default_policies

from .builders import (
    HOME,
    OUTSIDE,
    Telemetry,
    alerts_of,
    evaluate,
    evidence_ids,
    mailbox_of,
    today,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_at_now")]

SUSPICIOUS = AlertPolicy.Kind.FORWARDING
CREATED = AlertPolicy.Kind.FORWARDING_RULE
MANIPULATION = AlertPolicy.Kind.INBOX_MANIPULATION
DELEGATION = AlertPolicy.Kind.DELEGATION
ALICE = f"alice@{HOME}"
BOB = f"bob@{HOME}"
MALLORY = f"mallory@{OUTSIDE}"


@pytest.fixture
def telemetry(tenant) -> Telemetry:
    return Telemetry.with_mailboxes(tenant, ALICE, BOB, at=today(8) - timedelta(days=30))


# ---------------------------------------------------------------------------------------------- forwarding


def test_external_mailbox_forwarding_is_suspicious_and_names_the_address(tenant, telemetry):
    event = telemetry.forwarding(ALICE, MALLORY, at=today(10))
    telemetry.forwarding(BOB, ALICE, at=today(10))  # internal: not suspicious
    evaluate(tenant, telemetry.ingest())

    [alert] = alerts_of(tenant, SUSPICIOUS)
    assert alert.mailbox.address == ALICE and alert.severity == "high"
    assert evidence_ids(alert) == [event]
    assert alert.evidence.get().kind == "forwarding"
    assert alert.details["kinds"] == ["mailbox"] and alert.details["addresses"] == [MALLORY]
    assert alert.details["forwarding"][0]["keep_copy"] is True


def test_turning_forwarding_off_raises_nothing(tenant, telemetry):
    telemetry.forwarding(ALICE, MALLORY, at=today(9))
    telemetry.ingest()
    telemetry.forwarding(ALICE, None, at=today(10))
    evaluate(tenant, telemetry.ingest())
    assert alerts_of(tenant, SUSPICIOUS) == []


def test_an_external_forwarding_rule_is_suspicious_and_a_created_forwarding_rule(tenant, telemetry):
    event = telemetry.inbox_rule(
        ALICE, at=today(10), actions={"forward_to": [f"colleague@{HOME}", MALLORY]}, name="fw"
    )
    evaluate(tenant, telemetry.ingest())

    [suspicious] = alerts_of(tenant, SUSPICIOUS, ALICE)
    assert evidence_ids(suspicious) == [event] and suspicious.evidence.get().kind == "inbox_rule"
    assert suspicious.details["kinds"] == ["inbox rule"]
    assert suspicious.details["addresses"] == [MALLORY]  # the external one only
    [created] = alerts_of(tenant, CREATED, ALICE)
    assert created.severity == "informational" and evidence_ids(created) == [event]
    assert created.details["rules"][0]["external"] == [MALLORY]


def test_an_internal_redirect_rule_is_not_suspicious_but_is_reported_as_created(tenant, telemetry):
    event = telemetry.inbox_rule(ALICE, at=today(10), actions={"redirect_to": BOB}, rule_id="r-internal")
    evaluate(tenant, telemetry.ingest())
    assert alerts_of(tenant, SUSPICIOUS) == []
    [created] = alerts_of(tenant, CREATED, ALICE)
    assert evidence_ids(created) == [event]
    assert created.details["rules"][0]["actions"] == ["redirect_to"]
    assert created.details["rules"][0]["external"] == []


def test_a_disabled_external_rule_is_created_but_not_suspicious(tenant, telemetry):
    telemetry.inbox_rule(ALICE, at=today(10), actions={"forward_to": MALLORY}, enabled=False)
    evaluate(tenant, telemetry.ingest())
    assert alerts_of(tenant, SUSPICIOUS) == []
    [created] = alerts_of(tenant, CREATED, ALICE)
    assert created.details["rules"][0]["enabled"] is False


def test_enabling_a_forwarding_rule_later_is_suspicious_then(tenant, telemetry):
    telemetry.inbox_rule(ALICE, at=today(9), actions={"forward_to": MALLORY}, enabled=False)
    evaluate(tenant, telemetry.ingest())
    enabled = telemetry.inbox_rule(
        ALICE, at=today(10), actions={"forward_to": MALLORY}, operation="updated", enabled=True
    )
    evaluate(tenant, telemetry.ingest())
    [alert] = alerts_of(tenant, SUSPICIOUS)
    assert evidence_ids(alert) == [enabled]


def test_deleting_a_rule_or_a_rule_without_forwarding_raises_nothing(tenant, telemetry):
    telemetry.inbox_rule(ALICE, at=today(9), actions={"forward_to": MALLORY}, rule_id="old")
    telemetry.ingest()
    telemetry.inbox_rule(ALICE, at=today(10), actions={}, operation="deleted", rule_id="old")
    telemetry.inbox_rule(ALICE, at=today(10), actions={"move_to_folder": "Projects"}, rule_id="tidy")
    evaluate(tenant, telemetry.ingest())
    assert alerts_of(tenant, SUSPICIOUS) == [] and alerts_of(tenant, CREATED) == []


def test_a_change_outside_the_batch_range_is_not_read(tenant, telemetry):
    telemetry.forwarding(ALICE, MALLORY, at=today(9))
    telemetry.ingest()
    telemetry.forwarding(BOB, MALLORY, at=today(10))
    evaluate(tenant, telemetry.ingest())
    assert [a.mailbox.address for a in alerts_of(tenant, SUSPICIOUS)] == [BOB]


def test_re_running_the_detectors_adds_nothing(tenant, telemetry):
    telemetry.forwarding(ALICE, MALLORY, at=today(10))
    telemetry.inbox_rule(ALICE, at=today(10, 5), actions={"redirect_to": MALLORY, "delete": True})
    batch = telemetry.ingest()
    evaluate(tenant, batch)
    before = (Alert.objects.count(), AlertEvidence.objects.count())
    assert before == (3, 4)  # suspicious forwarding (2 events), rule created, inbox manipulation
    evaluate(tenant, batch)
    assert (Alert.objects.count(), AlertEvidence.objects.count()) == before


# ----------------------------------------------------------------------------------------- inbox manipulation


def test_a_rule_deleting_invoices_is_manipulation_on_finance_keywords(tenant, telemetry):
    event = telemetry.inbox_rule(
        ALICE,
        at=today(10),
        conditions={"subject_contains": ["Invoice", "Wire transfer"]},
        actions={"delete": True, "mark_as_read": True},
    )
    evaluate(tenant, telemetry.ingest())
    [alert] = alerts_of(tenant, MANIPULATION, ALICE)
    assert evidence_ids(alert) == [event]
    assert alert.details["actions"] == ["delete", "mark_as_read"]
    assert alert.details["finance keywords"] == ["invoice", "transfer", "wire"]


def test_moving_mail_to_a_rarely_used_folder_is_manipulation(tenant, telemetry):
    telemetry.inbox_rule(ALICE, at=today(10), actions={"move_to_folder": "RSS Feeds"})
    telemetry.inbox_rule(
        BOB, at=today(10), actions={"move_to_folder": "Archive"}, conditions={"from": "bank"}
    )
    evaluate(tenant, telemetry.ingest())
    [alert] = alerts_of(tenant, MANIPULATION)
    assert alert.mailbox.address == ALICE
    assert alert.details["actions"] == ["move_to_folder: RSS Feeds"]
    assert "finance keywords" not in alert.details


def test_mark_as_read_alone_is_manipulation_and_a_disabled_rule_is_not(tenant, telemetry):
    telemetry.inbox_rule(ALICE, at=today(10), actions={"mark_as_read": True})
    telemetry.inbox_rule(BOB, at=today(10), actions={"delete": True}, enabled=False)
    evaluate(tenant, telemetry.ingest())
    assert [a.mailbox.address for a in alerts_of(tenant, MANIPULATION)] == [ALICE]


# ---------------------------------------------------------------------------------------------- delegation


def test_full_access_and_send_as_grants_are_reported(tenant, telemetry):
    full = telemetry.delegation(ALICE, MALLORY, "full_access", at=today(10))
    send_as = telemetry.delegation(ALICE, BOB, "send_as", at=today(10, 5))
    telemetry.delegation(BOB, ALICE, "send_on_behalf", at=today(10))
    evaluate(tenant, telemetry.ingest())
    [alert] = alerts_of(tenant, DELEGATION)
    assert alert.mailbox.address == ALICE and alert.severity == "low"
    assert evidence_ids(alert) == [full, send_as]
    assert {(d["delegate"], d["access"]) for d in alert.details["delegations"]} == {
        (MALLORY, "full_access"),
        (BOB, "send_as"),
    }


def test_removing_a_delegation_is_not_reported(tenant, telemetry):
    telemetry.delegation(ALICE, MALLORY, "full_access", at=today(9))
    telemetry.ingest()
    telemetry.delegation(ALICE, MALLORY, "full_access", at=today(10), operation="removed")
    evaluate(tenant, telemetry.ingest())
    assert alerts_of(tenant, DELEGATION) == []


# ---------------------------------------------------------------------------------------------- queries


@pytest.mark.parametrize("detector", [forwarding, forwarding_rule, inbox_manipulation])
def test_the_rule_detectors_read_a_whole_batch_in_a_fixed_number_of_queries(
    tenant, telemetry, django_assert_max_num_queries, detector
):
    users = [f"user{i}@{HOME}" for i in range(6)]
    for user in users:
        for n in range(3):
            telemetry.inbox_rule(
                user, at=today(10, n), rule_id=f"r{n}", actions={"forward_to": MALLORY, "delete": True}
            )
    telemetry.ingest()
    mailboxes = [mailbox_of(tenant, u) for u in users]
    policy = ensure_default_policies(tenant)[AlertPolicy.Kind.FORWARDING]
    with django_assert_max_num_queries(2):
        detections = detector.detect(policy, mailboxes, today(10), today(11))
    assert len(detections) == 6 and all(len(d.evidence) == 3 for d in detections)
