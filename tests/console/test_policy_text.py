"""Policies in words: threshold keys as labels with their units on the list, the detail and the overrides;
the override form's help reads the policy's current value, not the shipped default."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from alerts import services
from alerts.models import AlertPolicy
from tests.alerts.alert_builders import make_mailbox, policy_of

pytestmark = pytest.mark.django_db


def test_the_override_help_reads_the_current_policy(administrator_client, administrator, tenant):
    policy = policy_of(tenant, AlertPolicy.Kind.SENDING_LIMIT)
    services.update_policy(policy, actor=administrator, thresholds={"external_per_hour": 1000})
    page = administrator_client.get(reverse("console:policy_detail", args=[policy.pk])).content.decode()
    assert "now 1,000 recipients / hour" in page
    assert "default 500" not in page.split("Per-mailbox overrides", 1)[1]


def test_policies_and_overrides_show_labels_and_units(administrator_client, administrator, tenant):
    policy = policy_of(tenant, AlertPolicy.Kind.SENDING_LIMIT)
    make_mailbox(tenant, "news@example.com")
    services.set_policy_override(
        policy,
        actor=administrator,
        mailbox_address="news@example.com",
        thresholds={"external_per_hour": 2000},
    )
    listing = administrator_client.get(reverse("console:policies")).content.decode()
    detail = administrator_client.get(reverse("console:policy_detail", args=[policy.pk])).content.decode()
    for page in (listing, detail):
        visible = re.sub(r"<[^>]+>", " ", page)
        assert "external_per_hour" not in visible and "total_per_day" not in visible
    assert "External recipients in a rolling hour: 2,000 recipients / hour" in detail
    assert "500 recipients / hour" in listing
