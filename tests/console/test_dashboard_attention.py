"""The dashboard's second pass: "Needs attention now" comes first (open high-severity alerts and the actions
waiting for a decision, oldest first); the trend counts alerts by when their activity began, stacked by
severity, on a y axis; status counters leave out the zeros."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from alerts.models import Alert, AlertPolicy
from tests.alerts.alert_builders import make_alert, make_mailbox

pytestmark = pytest.mark.django_db
DASHBOARD = reverse("console:dashboard")


def test_the_trend_counts_by_first_activity_stacked_by_severity(reader_client, tenant):
    alert = make_alert(
        tenant,
        make_mailbox(tenant, "a@example.com"),
        AlertPolicy.Kind.FORWARDING,
        at=timezone.now() - timedelta(days=3),
    )
    response = reader_client.get(DASHBOARD)
    daily = response.context["daily"]
    # Created just now, but its activity began three days ago: that is the day it counts on.
    assert daily.bars[-1].count == 0
    assert daily.bars[-4].count == 1
    assert [(s.key, s.count) for s in daily.bars[-4].segments] == [(alert.severity, 1)]
    html = response.content.decode()
    assert f'class="bar bar-{alert.severity}"' in html
    assert [value for value, _ in daily.ticks] == [0, 1, 2]  # the y axis
    assert "style=" not in html


def test_needs_attention_now_comes_first(reader_client, tenant):
    mailbox = make_mailbox(tenant, "b@example.com")
    alert = make_alert(tenant, mailbox, AlertPolicy.Kind.FORWARDING)
    Alert.objects.filter(pk=alert.pk).update(severity="high")
    html = reader_client.get(DASHBOARD).content.decode()
    attention = html.index("Needs attention now")
    assert attention < html.index("Open alerts by severity")
    assert attention < html.index(reverse("console:alert_detail", args=[alert.pk]))
    assert "Nothing waits for a decision." in html


def test_status_counters_leave_out_the_zeros(reader_client, tenant):
    make_alert(tenant, make_mailbox(tenant, "c@example.com"), AlertPolicy.Kind.FORWARDING)
    response = reader_client.get(DASHBOARD)
    html = response.content.decode()
    statuses = html[html.index('id="status-heading"') : html.index('id="other-heading"')]
    assert "New" in statuses and "Resolved" not in statuses
    investigations = html[html.index('id="investigations-heading"') : html.index('id="trend-heading"')]
    assert "None." in investigations


def test_time_to_restrict_runs_from_the_breach_not_from_the_first_activity(reader_client, tenant):
    from restricted_users.services import restrict_user

    mailbox = make_mailbox(tenant, "d@example.com")
    # Sending began six hours ago; it crossed the limit 20 minutes ago; the policy restricted now.
    alert = make_alert(tenant, mailbox, AlertPolicy.Kind.FORWARDING, at=timezone.now() - timedelta(hours=6))
    breach = (timezone.now() - timedelta(minutes=20)).isoformat()
    restriction, _ = restrict_user(
        mailbox,
        policy_name="Email sending limit exceeded",
        reason={"limit_name": "external_per_hour", "limit": 500, "count": 612, "window_end": breach},
        expires_at=None,
        source="policy",
        actor_label="test",
    )
    Alert.objects.filter(pk=alert.pk).update(restriction=restriction)
    ttr = reader_client.get(DASHBOARD).context["time_to_restrict"]
    assert ttr["count"] == 1
    assert timedelta(minutes=19) <= ttr["median"] <= timedelta(minutes=21)
