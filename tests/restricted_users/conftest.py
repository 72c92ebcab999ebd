"""Builders for the restricted-users tests: mailboxes, restrictions, a clean Redis keyspace."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailboxes.models import Mailbox
from restricted_users import services, state
from restricted_users.models import CHECKLIST_ITEMS
from tests import builders

# Every checklist item attested by hand.
ALL_ATTESTED = dict.fromkeys(CHECKLIST_ITEMS, True)
# A fixed Tuesday morning (UTC): the next midnight is 14 hours away.
MORNING = datetime(2031, 3, 4, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _sessions_outlive_time_travel(settings):
    """Tests travel to 2031; a session signed in at the real date must still be valid there."""
    settings.SESSION_COOKIE_AGE = 20 * 365 * 24 * 3600


@pytest.fixture
def make_mailbox(tenant):
    """``make_mailbox(address, display_name=…, tenant_=…)``: the shared builder, named after the address by
    default."""

    def make(address: str = "alice@example.com", *, display_name: str = "", tenant_=None) -> Mailbox:
        name = display_name or address.split("@")[0].title()
        return builders.make_mailbox(tenant_ or tenant, address, display_name=name)

    return make


@pytest.fixture
def mailbox(make_mailbox):
    return make_mailbox("alice@example.com", display_name="Alice Example")


@pytest.fixture
def restrict():
    """Place a restriction as the sending-limit policy would (until the next midnight unless told)."""

    def place(mailbox, *, until_released: bool = False, policy_name: str = "Email sending limit exceeded"):
        from django.utils import timezone

        restriction, _ = services.restrict_user(
            mailbox,
            policy_name=policy_name,
            reason={
                "limit_name": "external_per_hour",
                "limit": 500,
                "count": 612,
                "window_start": "2031-03-04T08:30:00+00:00",
                "window_end": "2031-03-04T09:30:00+00:00",
                "counts": {"external": 612, "internal": 3},
            },
            expires_at=None if until_released else services.next_utc_midnight(timezone.now()),
            source="policy",
            actor_label=f"policy: {policy_name}",
        )
        return restriction

    return place


@pytest.fixture
def redis_client(settings):
    """The test Redis db, with no restriction key before or after the test."""
    with builders.redis_without(state.key_pattern()) as client:
        yield client
