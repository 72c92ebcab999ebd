"""The production path with no manual step: events POSTed to the API commit, a real worker evaluates them,
raises the alert and restricts the sender, then raises "User restricted from sending email"."""

from datetime import UTC, datetime, timedelta

import pytest

from alerts.models import Alert
from core.services import create_api_token
from restricted_users.models import Restriction
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _burst(sender: str, messages: int, recipients_each: int) -> list[dict]:
    now = datetime.now(UTC).replace(microsecond=0)
    events = [
        {"type": "mailbox", "id": "mbx-1", "time": (now - timedelta(days=1)).isoformat(), "address": sender}
    ]
    for n in range(messages):
        events.append(
            {
                "type": "message",
                "id": f"burst-{n}",
                "time": (now - timedelta(minutes=50) + timedelta(seconds=30 * n)).isoformat(),
                "sender": sender,
                "recipients": [f"victim{n}-{r}@fabrikam.example" for r in range(recipients_each)],
                "subject": "Your mailbox is almost full",
                "verdict": "phish",
            }
        )
    return events


def test_posted_events_raise_the_alert_and_the_restriction_with_no_manual_step(
    real_worker, client, tenant, administrator
):
    _, raw = create_api_token(tenant, actor=administrator, name="gateway", scope="ingest")
    events = _burst("mallory@contoso.example", messages=51, recipients_each=10)  # 510 external in an hour
    response = client.post(
        "/api/v1/events/", events, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert response.status_code == 201, response.content
    restriction = wait_for(
        lambda: Restriction.objects.active().filter(mailbox__address="mallory@contoso.example").first(),
        message="the restriction placed by the worker",
    )
    assert restriction.reason["limit_name"] == "external_per_hour"
    assert restriction.reason["count"] == 510
    limit_alert = Alert.objects.get(policy__kind="sending_limit", mailbox=restriction.mailbox)
    assert limit_alert.evidence_count == 51
    assert limit_alert.restriction_id == restriction.pk
    restricted_alert = wait_for(
        lambda: Alert.objects.filter(policy__kind="restriction", mailbox=restriction.mailbox).first(),
        message='the "User restricted from sending email" alert',
    )
    assert restricted_alert.severity == "high"


def test_a_batch_under_the_limit_raises_nothing(real_worker, client, tenant, administrator):
    _, raw = create_api_token(tenant, actor=administrator, name="gateway", scope="ingest")
    events = _burst("alice@contoso.example", messages=50, recipients_each=10)  # exactly 500: not over
    response = client.post(
        "/api/v1/events/", events, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert response.status_code == 201
    # The evaluation ran (the worker is idle again) yet placed nothing.
    from core.models import Heartbeat
    from core.tasks import beat_heartbeat

    beat_heartbeat.delay()
    wait_for(lambda: Heartbeat.objects.filter(name="beat").exists(), message="the worker to drain its queue")
    assert not Restriction.objects.exists()
    assert not Alert.objects.filter(policy__kind="sending_limit").exists()
