"""Two workers restricting the same user at the same moment place one restriction (PostgreSQL row locks)."""

import threading

import pytest
from django.db import connection

from restricted_users import services
from restricted_users.models import Restriction

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_restrictions_of_one_user_place_one_row(mailbox, redis_client):
    barrier = threading.Barrier(2)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def place(source: str) -> None:
        try:
            barrier.wait(timeout=10)
            restriction, created = services.restrict_user(
                mailbox, policy_name=f"by {source}", reason={}, expires_at=None, source=source
            )
            results.append((restriction.pk, created))
        except BaseException as exc:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=place, args=(s,)) for s in ("policy", "policy_service")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert Restriction.objects.count() == 1
    assert sorted(created for _, created in results) == [False, True]
    assert {pk for pk, _ in results} == {Restriction.objects.get().pk}
    assert redis_client.exists(f"soc:restricted:default:{mailbox.address}")
