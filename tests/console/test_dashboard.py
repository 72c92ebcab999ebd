"""The Alerts dashboard: its numbers on a small known dataset, each number linking to a list that shows the
same count, the htmx self-refresh returning the widgets alone, and a query count that does not grow with the
alerts. Alerts come from the real ``raise_alert``, restrictions from ``restrict_user``; investigations and
actions are rows (their playbook is tested elsewhere)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from alerts.models import Alert, AlertPolicy
from investigations.models import Investigation, RemediationAction
from restricted_users.models import Restriction
from restricted_users.services import restrict_user
from tests.alerts.alert_builders import make_alert, make_mailbox
from tests.builders import frozen_at
from tests.investigations.action_builders import make_action, make_investigation

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
DASHBOARD = reverse("console:dashboard")
IStatus = Investigation.Status
AStatus = RemediationAction.Status


frozen_time = frozen_at(NOW)


def _restrict(mailbox, *, source: str = Restriction.Source.POLICY, alert: Alert | None = None, **fields):
    restriction, created = restrict_user(
        mailbox,
        policy_name="Email sending limit exceeded" if source == Restriction.Source.POLICY else "By hand",
        reason={"limit_name": "hourly"},
        expires_at=fields.pop("expires_at", None),
        source=source,
        actor_label="test",
    )
    assert created
    if alert is not None:
        Alert.objects.filter(pk=alert.pk).update(restriction=restriction)
    return restriction


@pytest.fixture
def dataset(tenant):
    """Four open alerts: Alice's 30 min and Bob's 90 min before their policy restriction, Carol's (restricted
    by hand), Dave's (restricted by a policy 10 days ago, expired since); investigations: two
    remediated in the last 30 days (2 h and 1 h), one remediated 40 days ago, one pending action with two
    pending actions (the oldest proposed 3 h ago), one running."""
    alice, bob, carol, dave = (
        make_mailbox(tenant, f"{name}@example.com", display_name=name.title())
        for name in ("alice", "bob", "carol", "dave")
    )
    alice_alert = make_alert(tenant, alice, at=NOW - timedelta(minutes=30))
    bob_alert = make_alert(tenant, bob, AlertPolicy.Kind.DELEGATION, at=NOW - timedelta(minutes=90))
    make_alert(tenant, carol, at=NOW - timedelta(minutes=10))
    _restrict(alice, alert=alice_alert)
    _restrict(bob, alert=bob_alert)
    _restrict(carol, source=Restriction.Source.MANUAL)
    with time_machine.travel(NOW - timedelta(days=10), tick=False):
        dave_alert = make_alert(tenant, dave, at=NOW - timedelta(days=10, hours=5))
        _restrict(dave, alert=dave_alert, expires_at=NOW - timedelta(days=9))

    for created, done in ((timedelta(hours=5), timedelta(hours=3)), (timedelta(hours=2), timedelta(hours=1))):
        investigation = make_investigation(alice, status=IStatus.REMEDIATED, created_at=NOW - created)
        make_action(
            investigation,
            RemediationAction.Type.REVOKE_SESSIONS,
            status=AStatus.COMPLETED,
            completed_at=NOW - done,
        )
    make_investigation(bob, status=IStatus.REMEDIATED, created_at=NOW - timedelta(days=40))
    waiting = make_investigation(carol, status=IStatus.PENDING_ACTION)
    make_action(waiting, RemediationAction.Type.REVOKE_SESSIONS, proposed_at=NOW - timedelta(hours=3))
    make_action(waiting, RemediationAction.Type.FORCE_PASSWORD_RESET, proposed_at=NOW - timedelta(minutes=20))
    make_investigation(dave, status=IStatus.RUNNING)
    return tenant


def _count_at(client, url: str) -> int:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.context["result_count"]


def test_the_dashboard_counts_the_small_dataset(reader_client, dataset):
    context = reader_client.get(DASHBOARD).context

    assert context["open_count"] == 4  # Dave's alert of 10 days ago is still open
    assert context["restricted_count"] == 2 + 1  # Alice and Bob by policy, Carol by hand; Dave's expired
    assert context["newest_restriction"].mailbox.address == "carol@example.com"
    by_status = {row["value"]: row["count"] for row in context["investigations"]}
    assert by_status[IStatus.REMEDIATED] == 3
    assert by_status[IStatus.PENDING_ACTION] == 1
    assert by_status[IStatus.RUNNING] == 1
    assert by_status[IStatus.QUEUED] == 0
    assert context["pending"]["count"] == 2
    assert context["pending"]["waiting"] == timedelta(hours=3)
    # Alice 30 min and Bob 90 min; Dave's is older than 7 days and Carol's was by hand.
    assert context["time_to_restrict"] == {**context["time_to_restrict"], "count": 2}
    assert context["time_to_restrict"]["median"] == timedelta(hours=1)
    # 2 h and 1 h; the one of 40 days ago is left out.
    assert context["time_to_remediate"]["count"] == 2
    assert context["time_to_remediate"]["median"] == timedelta(hours=1, minutes=30)


def test_the_dashboard_shows_the_numbers_readably(reader_client, dataset):
    html = reader_client.get(DASHBOARD).content.decode()

    assert "3 h 00 min" in html  # the oldest pending action's wait
    assert "1 h 00 min" in html  # median time to restrict
    assert "1 h 30 min" in html  # median time to remediate
    assert '<time datetime="2026-03-02T12:00:00+00:00"' in html
    assert "2026-03-02 12:00 UTC" in html  # Carol's restriction, the newest


def test_every_number_links_to_a_list_with_the_same_count(reader_client, dataset):
    context = reader_client.get(DASHBOARD).context

    for row in [*context["severities"], *context["statuses"], *context["investigations"]]:
        assert _count_at(reader_client, row["url"]) == row["count"], row
    for row in context["top_users"]:
        assert _count_at(reader_client, row["url"]) == row["n"], row
        assert _count_at(reader_client, row["open_url"]) == row["open"], row
    assert _count_at(reader_client, context["open_url"]) == context["open_count"]
    assert _count_at(reader_client, context["restricted_url"]) == context["restricted_count"]
    assert _count_at(reader_client, context["pending"]["url"]) == context["pending"]["count"]
    assert (
        _count_at(reader_client, context["time_to_restrict"]["url"]) == context["time_to_restrict"]["count"]
    )
    assert (
        _count_at(reader_client, context["time_to_remediate"]["url"]) == context["time_to_remediate"]["count"]
    )


def test_the_links_are_in_the_page(reader_client, dataset):
    response = reader_client.get(DASHBOARD)
    html = response.content.decode()
    context = response.context
    for url in (
        context["pending"]["url"],
        context["time_to_restrict"]["url"],
        context["time_to_remediate"]["url"],
        context["restricted_url"],
        reverse("console:restricted_user_detail", args=[context["newest_restriction"].pk]),
        *(row["url"] for row in context["investigations"] if row["count"]),
    ):
        assert f'href="{url.replace("&", "&amp;")}"' in html, url
    # Counters without zeros (issue 16): a status nobody is in is not listed.
    for row in context["investigations"]:
        if not row["count"]:
            assert f'href="{row["url"].replace("&", "&amp;")}"' not in html, row["url"]


def test_the_waiting_actions_are_the_oldest_still_decidable_and_skip_the_expired(reader_client, dataset):
    stale = make_investigation(
        Investigation.objects.get(status=IStatus.PENDING_ACTION).mailbox, status=IStatus.PENDING_ACTION
    )
    # Pending but past its expiry (beat has not marked it Expired yet): it reads as Expired, not waiting.
    make_action(stale, RemediationAction.Type.REVOKE_SESSIONS, proposed_at=NOW - timedelta(days=9))

    context = reader_client.get(DASHBOARD).context

    waiting = context["attention"]["waiting_actions"]
    assert [action.proposed_at for action in waiting] == [
        NOW - timedelta(hours=3),
        NOW - timedelta(minutes=20),
    ]
    assert context["pending"]["count"] == 2


def test_time_to_remediate_reads_a_completion_before_the_creation_as_zero(reader_client, tenant):
    mailbox = make_mailbox(tenant, "erin@example.com")

    def completed(investigation, action_type, *, ago: timedelta) -> None:
        make_action(investigation, action_type, status=AStatus.COMPLETED, completed_at=NOW - ago)

    hour = make_investigation(mailbox, status=IStatus.REMEDIATED, created_at=NOW - timedelta(hours=4))
    completed(hour, RemediationAction.Type.REVOKE_SESSIONS, ago=timedelta(hours=3))
    # Its last action completed (by hand, before the console knew) half an hour before it was created.
    early = make_investigation(mailbox, status=IStatus.REMEDIATED, created_at=NOW - timedelta(hours=1))
    completed(early, RemediationAction.Type.REVOKE_SESSIONS, ago=timedelta(hours=2))
    # Its earlier completion is not its last: the last one counts.
    completed(early, RemediationAction.Type.FORCE_PASSWORD_RESET, ago=timedelta(minutes=90))

    ttr = reader_client.get(DASHBOARD).context["time_to_remediate"]

    assert ttr["count"] == 2
    assert ttr["median"] == timedelta(minutes=30)  # of 0 (not −30 min) and 1 h


def test_the_dashboard_narrows_to_one_tenant(reader_client, dataset, other_tenant):
    context = reader_client.get(DASHBOARD, {"tenant": other_tenant.pk}).context

    assert context["open_count"] == 0
    assert context["restricted_count"] == 0
    assert context["pending"]["count"] == 0
    assert f"tenant={other_tenant.slug}" in context["restricted_url"]
    assert f"tenant={other_tenant.pk}" in context["pending"]["url"]


def test_the_htmx_refresh_returns_only_the_widgets(reader_client, dataset):
    page = reader_client.get(DASHBOARD).content.decode()
    assert 'hx-trigger="every 30s"' in page
    assert 'hx-select="#dashboard-widgets"' in page

    response = reader_client.get(DASHBOARD, HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert response.status_code == 200
    assert html.strip().startswith('<div id="dashboard-widgets"')
    assert "<html" not in html and "<h1>" not in html and "Sign out" not in html
    assert "Pending actions" in html and "Investigations by status" in html


def test_the_dashboard_needs_the_alert_view_permission(nobody_client, client):
    assert nobody_client.get(DASHBOARD).status_code == 403
    assert client.get(DASHBOARD).status_code == 302


def test_the_dashboard_query_count_does_not_grow_with_alerts(
    reader_client, tenant, django_assert_max_num_queries
):
    def fill(start: int, stop: int) -> None:
        for i in range(start, stop):
            mailbox = make_mailbox(tenant, f"user{i}@example.com")
            alert = make_alert(tenant, mailbox, at=NOW - timedelta(hours=i % 48))
            if i % 5 == 0:
                _restrict(mailbox, alert=alert)
            if i % 7 == 0:
                investigation = make_investigation(mailbox, status=IStatus.REMEDIATED)
                make_action(investigation, RemediationAction.Type.REVOKE_SESSIONS, completed_at=NOW)

    fill(0, 10)
    reader_client.get(DASHBOARD)  # warm the session and permission caches
    with CaptureQueriesContext(connection) as small:
        reader_client.get(DASHBOARD)
    fill(10, 100)
    assert Alert.objects.count() == 100
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = reader_client.get(DASHBOARD)
    assert response.context["open_count"] == 100


@pytest.mark.parametrize(
    ("window_end", "expected"),
    [
        ("2026-03-02T13:40:00.250000+02:00", timedelta(minutes=20)),  # an offset and microseconds
        ("2026-03-02T06:10:00-05:30", timedelta(minutes=20)),
        ("2026-03-02T11:40:00Z", timedelta(minutes=20)),  # not isoformat()'s form: read as Python reads it
        ("2026-02-29T11:40:00+00:00", timedelta(hours=2)),  # no such day in 2026: the alert's first activity
        ("2026-03-02T24:40:00+00:00", timedelta(hours=2)),  # no such hour
        ("2026-03-02T11:40:00", timedelta(hours=2)),  # no offset
        ("soon", timedelta(hours=2)),
    ],
)
def test_time_to_restrict_reads_the_window_end_as_a_real_time_or_falls_back_to_the_alert(
    reader_client, tenant, window_end, expected
):
    mailbox = make_mailbox(tenant, "frank@example.com")
    alert = make_alert(tenant, mailbox, at=NOW - timedelta(hours=2))
    restriction, _ = restrict_user(
        mailbox,
        policy_name="Email sending limit exceeded",
        reason={"limit_name": "hourly", "window_end": window_end},
        expires_at=None,
        source=Restriction.Source.POLICY,
        actor_label="test",
    )
    Alert.objects.filter(pk=alert.pk).update(restriction=restriction)

    ttr = reader_client.get(DASHBOARD).context["time_to_restrict"]

    assert (ttr["median"], ttr["count"]) == (expected, 1)
