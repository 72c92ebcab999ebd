"""Two workers restricting the same user at the same moment place one restriction (PostgreSQL row locks)."""

from functools import partial

import pytest

from restricted_users import services
from restricted_users.models import Restriction
from tests.builders.threads import run_together

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_restrictions_of_one_user_place_one_row(mailbox, redis_client):
    def place(source: str) -> tuple[int, bool]:
        restriction, created = services.restrict_user(
            mailbox, policy_name=f"by {source}", reason={}, expires_at=None, source=source
        )
        return restriction.pk, created

    results, errors = run_together(*(partial(place, s) for s in ("policy", "policy_service")), timeout=30)
    assert errors == []
    assert Restriction.objects.count() == 1
    assert sorted(created for _, created in results) == [False, True]
    assert {pk for pk, _ in results} == {Restriction.objects.get().pk}
    assert redis_client.exists(f"soc:restricted:default:{mailbox.address}")
