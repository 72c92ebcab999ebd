"""Where a role cannot act, the page says who can: an operator on a restricted user learns that releasing
needs an administrator; an administrator gets the release form instead."""

from __future__ import annotations

import pytest
from django.urls import reverse

from restricted_users.services import restrict_user
from tests.alerts.alert_builders import make_mailbox

pytestmark = pytest.mark.django_db


def test_an_operator_is_told_that_release_needs_an_administrator(
    operator_client, administrator_client, tenant
):
    restriction, _ = restrict_user(
        make_mailbox(tenant, "r@example.com"),
        policy_name="Email sending limit exceeded",
        reason={"limit_name": "external_per_hour", "limit": 500, "count": 612},
        expires_at=None,
        source="policy",
        actor_label="test",
    )
    url = reverse("console:restricted_user_detail", args=[restriction.pk])
    operator_page = operator_client.get(url).content.decode()
    assert "a Security administrator releases it" in operator_page
    admin_page = administrator_client.get(url).content.decode()
    assert "a Security administrator releases it" not in admin_page
    assert "612 recipients" in operator_page  # the Why in words, with its unit
