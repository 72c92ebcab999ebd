"""The hand-off to the alerts layer in production wiring: a placed restriction is enqueued by task name on
commit, and a real worker raises "User restricted from sending email" pointing back to it."""

import pytest
from django.db import transaction

from restricted_users import services
from restricted_users.models import Restriction
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_placed_restriction_raises_the_restricted_user_alert_in_the_worker(
    real_worker, mailbox, redis_client
):
    from alerts.models import Alert, AlertPolicy

    with transaction.atomic():
        restriction, _ = services.restrict_user(
            mailbox,
            policy_name="Postfix policy service",
            reason={"limit_name": "external_per_hour", "limit": 500, "count": 501},
            expires_at=None,
            source=Restriction.Source.POLICY_SERVICE,
            actor_label="postfix",
        )
        assert not Alert.objects.exists()
    alert = wait_for(
        lambda: Alert.objects.filter(restriction=restriction).select_related("policy").first(),
        message="the restricted-user alert",
    )
    assert alert.policy.kind == AlertPolicy.Kind.RESTRICTION
    assert alert.mailbox_id == mailbox.pk
    assert alert.details["policy_name"] == "Postfix policy service"
