"""Placing restrictions: one active per user, expiry computed from the clock, the audit trail."""

from datetime import timedelta

import pytest
import time_machine

from core.models import AuditEvent
from restricted_users import services
from restricted_users.exceptions import RestrictionError, RestrictionPermissionError
from restricted_users.models import Restriction

from .conftest import MORNING

pytestmark = pytest.mark.django_db


def test_midnight_helpers_bracket_the_utc_day():
    assert services.utc_midnight_before(MORNING) == MORNING.replace(hour=0)
    assert services.next_utc_midnight(MORNING) == MORNING.replace(hour=0) + timedelta(days=1)
    midnight = MORNING.replace(hour=0)
    assert services.next_utc_midnight(midnight) == midnight + timedelta(days=1)


@time_machine.travel(MORNING, tick=False)
def test_restricting_twice_returns_the_same_restriction_and_keeps_one_row(mailbox, restrict):
    first = restrict(mailbox)
    again, created = services.restrict_user(
        mailbox,
        policy_name="Postfix policy service",
        reason={"limit_name": "per_day"},
        expires_at=services.next_utc_midnight(MORNING),
        source="policy_service",
    )
    assert created is False
    assert again.pk == first.pk
    assert Restriction.objects.for_mailbox(mailbox).count() == 1
    assert list(Restriction.objects.active()) == [first]
    assert AuditEvent.objects.filter(action="restricted_users.restriction.placed").count() == 1


@time_machine.travel(MORNING, tick=False)
def test_a_placement_is_audited_with_who_placed_it_and_why(mailbox, restrict):
    restriction = restrict(mailbox)
    event = AuditEvent.objects.get(action="restricted_users.restriction.placed")
    assert event.target_id == str(restriction.pk)
    assert event.actor_label == "policy: Email sending limit exceeded"
    assert event.tenant == mailbox.tenant
    assert event.after["state"] == "active"
    assert event.after["reason"]["count"] == 612
    assert event.after["expires_at"] == services.next_utc_midnight(MORNING).isoformat()


@time_machine.travel(MORNING, tick=False)
def test_an_until_released_request_extends_an_until_next_day_restriction(mailbox, restrict):
    restriction = restrict(mailbox)
    again, created = services.restrict_user(
        mailbox,
        policy_name="Investigation: block sender",
        reason={"investigation": 7},
        expires_at=None,
        source="investigation",
    )
    assert (again.pk, created) == (restriction.pk, False)
    restriction.refresh_from_db()
    assert restriction.expires_at is None
    event = AuditEvent.objects.get(action="restricted_users.restriction.extended")
    assert event.before["expires_at"] == services.next_utc_midnight(MORNING).isoformat()
    assert event.after["expires_at"] is None


@time_machine.travel(MORNING, tick=False)
def test_a_shorter_request_does_not_shorten_an_until_released_restriction(mailbox, restrict):
    restriction = restrict(mailbox, until_released=True)
    restrict(mailbox)
    restriction.refresh_from_db()
    assert restriction.expires_at is None
    assert not AuditEvent.objects.filter(action="restricted_users.restriction.extended").exists()


def test_the_restriction_ends_at_the_next_midnight_without_beat(mailbox, restrict):
    with time_machine.travel(MORNING, tick=False):
        first = restrict(mailbox)
        assert Restriction.objects.active().get() == first
    with time_machine.travel(services.next_utc_midnight(MORNING) + timedelta(seconds=1), tick=False):
        # Nothing has closed the row; the comparison with the clock alone says it is over.
        assert Restriction.objects.open().get() == first
        assert not Restriction.objects.active().exists()
        assert list(Restriction.objects.expired()) == [first]
        assert first.state == Restriction.State.EXPIRED
        second = restrict(mailbox)
        assert second.pk != first.pk
        assert list(Restriction.objects.active()) == [second]
    first.refresh_from_db()
    assert first.closed_at == first.expires_at
    assert AuditEvent.objects.filter(
        action="restricted_users.restriction.expired", target_id=str(first.pk)
    ).exists()


def test_an_until_released_restriction_never_expires(mailbox, restrict):
    with time_machine.travel(MORNING, tick=False):
        restriction = restrict(mailbox, until_released=True)
    with time_machine.travel(MORNING + timedelta(days=400), tick=False):
        assert list(Restriction.objects.active()) == [restriction]
        assert services.tidy_expired() == 0


def test_tidy_closes_expired_rows_and_audits_them_as_the_system(make_mailbox, restrict):
    ended, lasting = make_mailbox("a@example.com"), make_mailbox("b@example.com")
    with time_machine.travel(MORNING, tick=False):
        short = restrict(ended)
        long = restrict(lasting, until_released=True)
    with time_machine.travel(MORNING + timedelta(days=1), tick=False):
        assert services.tidy_expired() == 1
        assert services.tidy_expired() == 0
    short.refresh_from_db()
    long.refresh_from_db()
    assert short.closed_at == short.expires_at
    assert long.closed_at is None
    event = AuditEvent.objects.get(action="restricted_users.restriction.expired")
    assert (event.actor_label, event.target_id) == ("system", str(short.pk))
    assert (event.before["state"], event.after["state"]) == ("expired", "expired")
    assert event.before["closed_at"] is None


@time_machine.travel(MORNING, tick=False)
def test_an_expiry_in_the_past_or_an_unknown_source_is_refused(mailbox):
    with pytest.raises(RestrictionError):
        services.restrict_user(
            mailbox, policy_name="x", reason={}, expires_at=MORNING - timedelta(minutes=1), source="policy"
        )
    with pytest.raises(RestrictionError):
        services.restrict_user(mailbox, policy_name="x", reason={}, expires_at=None, source="martians")
    assert not Restriction.objects.exists()


def test_an_administrator_restricts_by_hand_with_a_reason(mailbox, administrator):
    restriction, created = services.restrict_by_hand(mailbox, actor=administrator, reason_text="  Phished  ")
    assert created
    assert restriction.source == Restriction.Source.MANUAL
    assert restriction.policy_name == "Manual restriction"
    assert restriction.expires_at is None
    assert restriction.placed_by == administrator
    assert restriction.reason == {"text": "Phished"}
    event = AuditEvent.objects.get(action="restricted_users.restriction.placed")
    assert event.actor == administrator


def test_restrict_by_hand_needs_a_reason_and_the_administrator_role(mailbox, administrator, operator):
    with pytest.raises(RestrictionError, match="reason"):
        services.restrict_by_hand(mailbox, actor=administrator, reason_text="   ")
    with pytest.raises(RestrictionPermissionError):
        services.restrict_by_hand(mailbox, actor=operator, reason_text="Phished")
    assert not Restriction.objects.exists()


@time_machine.travel(MORNING, tick=False)
def test_restrict_by_hand_until_next_day_expires_at_midnight(mailbox, administrator):
    restriction, _ = services.restrict_by_hand(
        mailbox, actor=administrator, reason_text="Noisy", until_released=False
    )
    assert restriction.expires_at == services.next_utc_midnight(MORNING)
