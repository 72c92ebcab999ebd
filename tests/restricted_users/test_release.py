"""Releasing a restricted user (DESIGN section 5): administrators only, a reason, the checklist, the cap."""

from datetime import timedelta

import pytest
import time_machine

from core.models import AuditEvent
from restricted_users import services
from restricted_users.exceptions import (
    ChecklistIncomplete,
    OverrideRequired,
    RestrictionError,
    RestrictionPermissionError,
)
from restricted_users.models import Restriction

from .conftest import ALL_ATTESTED, MORNING

pytestmark = pytest.mark.django_db


def release(restriction, actor, **kwargs):
    arguments = {"reason": "Password reset, rules removed", "attestations": ALL_ATTESTED, **kwargs}
    return services.release_user(restriction, actor=actor, **arguments)


@time_machine.travel(MORNING, tick=False)
def test_a_release_takes_effect_at_once(mailbox, restrict, administrator):
    restriction = restrict(mailbox)
    released = release(restriction, administrator)
    assert not Restriction.objects.active().exists()
    assert released.state == Restriction.State.RELEASED
    assert released.released_at == released.closed_at == MORNING
    assert released.released_by == administrator
    assert released.release_reason == "Password reset, rules removed"
    assert released.release_flagged is False
    # The mailbox's open slot is free: a new breach restricts again.
    assert restrict(mailbox).pk != restriction.pk


@time_machine.travel(MORNING, tick=False)
def test_an_operator_cannot_release(mailbox, restrict, operator, reader):
    restriction = restrict(mailbox)
    for actor in (operator, reader):
        with pytest.raises(RestrictionPermissionError):
            release(restriction, actor)
    assert Restriction.objects.active().get() == restriction


@time_machine.travel(MORNING, tick=False)
def test_a_release_needs_a_reason(mailbox, restrict, administrator):
    restriction = restrict(mailbox)
    with pytest.raises(RestrictionError, match="reason"):
        release(restriction, administrator, reason="  ")
    assert Restriction.objects.active().exists()


@time_machine.travel(MORNING, tick=False)
def test_a_release_with_an_unticked_checklist_item_is_refused(mailbox, restrict, administrator):
    restriction = restrict(mailbox)
    with pytest.raises(ChecklistIncomplete, match="Sessions revoked"):
        release(restriction, administrator, attestations={**ALL_ATTESTED, "sessions_revoked": False})
    with pytest.raises(RestrictionError, match="Unknown checklist item"):
        release(restriction, administrator, attestations={**ALL_ATTESTED, "prayed": True})
    assert Restriction.objects.active().exists()


@time_machine.travel(MORNING, tick=False)
def test_items_proven_elsewhere_are_ticked_automatically(mailbox, restrict, administrator, monkeypatch):
    monkeypatch.setattr(services, "_checklist_sources", [])
    services.register_checklist_source(
        lambda r: {"password_reset": "Action #12 force_password_reset completed"}
    )
    restriction = restrict(mailbox)
    assert services.checklist_auto_ticks(restriction)["password_reset"].startswith("Action #12")
    released = release(restriction, administrator, attestations={**ALL_ATTESTED, "password_reset": False})
    assert released.checklist["password_reset"]["state"] == "auto"
    assert released.checklist["password_reset"]["source"] == "Action #12 force_password_reset completed"
    assert released.checklist["mfa_enforced"] == {
        "state": "attested",
        "by": administrator.get_username(),
        "at": MORNING.isoformat(),
    }


@time_machine.travel(MORNING, tick=False)
def test_the_directory_state_ticks_what_it_proves(mailbox, restrict, administrator):
    from mailboxes.models import MailboxForwarding

    mailbox.sessions_revoked_at = MORNING - timedelta(hours=1)  # before the restriction: proves nothing
    mailbox.save()
    MailboxForwarding.objects.create(
        tenant=mailbox.tenant, mailbox=mailbox, forward_to="drop@evil.test", changed_at=MORNING
    )
    restriction = restrict(mailbox)
    assert services.checklist_auto_ticks(restriction) == {}

    mailbox.password_reset_required = True
    mailbox.sessions_revoked_at = MORNING
    mailbox.save()
    MailboxForwarding.objects.filter(mailbox=mailbox).update(forward_to=None)
    restriction.refresh_from_db()
    ticks = services.checklist_auto_ticks(restriction)
    assert set(ticks) == {"password_reset", "sessions_revoked", "forwarding_rules_delegates_reviewed"}
    released = release(restriction, administrator, attestations={"mfa_enforced": True})
    assert {item: entry["state"] for item, entry in released.checklist.items()} == {
        "password_reset": "auto",
        "mfa_enforced": "attested",
        "sessions_revoked": "auto",
        "forwarding_rules_delegates_reviewed": "auto",
    }


@time_machine.travel(MORNING, tick=False)
def test_a_released_or_expired_restriction_cannot_be_released_again(mailbox, restrict, administrator):
    restriction = restrict(mailbox)
    release(restriction, administrator)
    with pytest.raises(RestrictionError, match="already been released"):
        release(restriction, administrator)
    other = restrict(mailbox)
    with (
        time_machine.travel(MORNING + timedelta(days=1), tick=False),
        pytest.raises(RestrictionError, match="expired"),
    ):
        release(other, administrator)


@time_machine.travel(MORNING, tick=False)
def test_the_fourth_release_in_thirty_days_needs_an_override_and_is_flagged(mailbox, restrict, administrator):
    for _ in range(3):
        assert release(restrict(mailbox), administrator).release_flagged is False
    fourth = restrict(mailbox)
    with pytest.raises(OverrideRequired, match="override reason"):
        release(fourth, administrator)
    assert Restriction.objects.active().get() == fourth
    released = release(fourth, administrator, override_reason="CEO travelling, confirmed by phone")
    assert released.release_flagged is True
    assert released.release_override_reason == "CEO travelling, confirmed by phone"
    event = AuditEvent.objects.filter(action="restricted_users.restriction.released").first()
    assert event.after["flagged"] is True
    assert event.after["releases_in_window"] == 4


def test_releases_older_than_the_cap_window_do_not_count(mailbox, restrict, administrator):
    with time_machine.travel(MORNING, tick=False):
        for _ in range(3):
            release(restrict(mailbox), administrator)
    with time_machine.travel(MORNING + timedelta(days=31), tick=False):
        assert release(restrict(mailbox), administrator).release_flagged is False


@time_machine.travel(MORNING, tick=False)
def test_the_release_is_audited_with_before_and_after(mailbox, restrict, administrator):
    restriction = restrict(mailbox)
    release(restriction, administrator)
    event = AuditEvent.objects.get(action="restricted_users.restriction.released")
    assert event.actor == administrator
    assert event.target_id == str(restriction.pk)
    assert event.comment == "Password reset, rules removed"
    assert event.before["state"] == "active"
    assert event.before["released_at"] is None
    assert event.after["state"] == "released"
    assert event.after["released_at"] == MORNING.isoformat()
    assert set(event.after["checklist"]) == set(ALL_ATTESTED)


def test_released_since_answers_for_the_policy_and_the_time(mailbox, restrict, administrator):
    with time_machine.travel(MORNING, tick=False):
        release(restrict(mailbox, policy_name="Email sending limit exceeded"), administrator)
        midnight = services.utc_midnight_before(MORNING)
        assert services.released_since(mailbox, midnight)
        assert services.released_since(mailbox, midnight, policy_name="Email sending limit exceeded")
        assert not services.released_since(mailbox, midnight, policy_name="Manual restriction")
        assert services.released_since(mailbox, MORNING)
        assert not services.released_since(mailbox, MORNING + timedelta(seconds=1))
    with time_machine.travel(MORNING + timedelta(days=1), tick=False):
        assert not services.released_since(mailbox, services.utc_midnight_before(MORNING + timedelta(days=1)))
