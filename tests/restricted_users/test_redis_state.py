"""The restriction keys in Redis: written on placement with the expiry as TTL, removed on release, rebuilt by
the resync. The database decides; Redis follows after each commit."""

import json
from datetime import timedelta

import pytest
import time_machine

from restricted_users import services, state
from restricted_users.tasks import beat_resync_redis, beat_tidy

from .conftest import ALL_ATTESTED, MORNING

pytestmark = pytest.mark.django_db


def key_of(mailbox) -> str:
    return state.restriction_key(mailbox.tenant.slug, mailbox.address)


@time_machine.travel(MORNING, tick=False)
def test_placing_sets_the_key_with_the_time_to_midnight_as_ttl(
    mailbox, restrict, redis_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        restriction = restrict(mailbox)
    assert json.loads(redis_client.get(key_of(mailbox))) == {
        "id": restriction.pk,
        "policy_name": "Email sending limit exceeded",
        "expires_at": services.next_utc_midnight(MORNING).isoformat(),
    }
    assert 14 * 3600 - 5 <= redis_client.ttl(key_of(mailbox)) <= 14 * 3600
    assert state.is_restricted_in_redis(mailbox.tenant.slug, "Alice@Example.com")


@time_machine.travel(MORNING, tick=False)
def test_until_released_has_no_ttl_and_an_extension_drops_the_ttl(
    mailbox, restrict, redis_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        restrict(mailbox)
    assert redis_client.ttl(key_of(mailbox)) > 0
    with django_capture_on_commit_callbacks(execute=True):
        restrict(mailbox, until_released=True)
    assert redis_client.ttl(key_of(mailbox)) == -1  # exists, no expiry
    assert json.loads(redis_client.get(key_of(mailbox)))["expires_at"] is None


@time_machine.travel(MORNING, tick=False)
def test_releasing_deletes_the_key_on_commit(
    mailbox, restrict, administrator, redis_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        restriction = restrict(mailbox)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.release_user(restriction, actor=administrator, reason="Clean", attestations=ALL_ATTESTED)
    # Not before the transaction commits …
    assert redis_client.exists(key_of(mailbox))
    for callback in callbacks:
        callback()
    # … and at once after it.
    assert not redis_client.exists(key_of(mailbox))
    assert not state.is_restricted_in_redis(mailbox.tenant.slug, mailbox.address)


@time_machine.travel(MORNING, tick=False)
def test_the_resync_rebuilds_lost_keys_and_removes_stale_ones(
    make_mailbox, restrict, other_tenant, redis_client
):
    alice = make_mailbox("alice@example.com")
    bob = make_mailbox("bob@example.com")
    carol = make_mailbox("carol@example.org", tenant_=other_tenant)
    restrict(alice)
    restrict(bob, until_released=True)
    restrict(carol)
    stale = state.restriction_key(alice.tenant.slug, "gone@example.com")
    redis_client.set(stale, state.key_value(999_999, "Old", None))
    unreadable = state.restriction_key(alice.tenant.slug, "junk@example.com")
    redis_client.set(unreadable, "not json")
    # A key the policy service set at a breach, before its database row exists: kept.
    ahead = state.restriction_key(alice.tenant.slug, "dave@example.com")
    redis_client.set(ahead, state.key_value(None, "Postfix policy service", None), ex=600)

    assert services.sync_restrictions_to_redis(alice.tenant) == 2
    assert redis_client.exists(key_of(alice), key_of(bob)) == 2
    assert 0 < redis_client.ttl(key_of(alice)) <= 14 * 3600
    assert redis_client.ttl(key_of(bob)) == -1
    assert not redis_client.exists(stale) and not redis_client.exists(unreadable)
    assert redis_client.exists(ahead)
    assert not redis_client.exists(key_of(carol)), "another tenant is left alone"

    beat_resync_redis.delay()
    assert redis_client.exists(key_of(carol))


def test_the_resync_drops_keys_of_expired_restrictions(mailbox, restrict, redis_client):
    with time_machine.travel(MORNING, tick=False):
        restrict(mailbox)
        services.sync_restrictions_to_redis()
        assert redis_client.exists(key_of(mailbox))
    with time_machine.travel(MORNING + timedelta(days=1), tick=False):
        redis_client.persist(key_of(mailbox))  # as if the TTL had been lost
        assert services.sync_restrictions_to_redis() == 0
        beat_tidy.delay()
    assert not redis_client.exists(key_of(mailbox))
    assert mailbox.restrictions.get().closed_at is not None


def test_without_redis_configured_nothing_is_pushed(
    mailbox, restrict, settings, django_capture_on_commit_callbacks
):
    settings.REDIS_URL = ""
    with django_capture_on_commit_callbacks(execute=True):
        restrict(mailbox)
    assert state.get_redis() is None
    assert services.sync_restrictions_to_redis() == 0
    assert not state.is_restricted_in_redis(mailbox.tenant.slug, mailbox.address)


def test_an_unreadable_key_still_means_restricted(redis_client):
    redis_client.set(state.restriction_key("default", "eve@example.com"), "{broken")
    assert state.is_restricted_in_redis("default", "EVE@example.com")
