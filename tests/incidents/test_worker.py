"""With a real worker: a sending-limit burst posted to the API ends as one incident grouping the breach alert,
the restriction, the "User restricted" alert and the investigation, each reached through the tasks the lower
apps enqueue by name."""

from __future__ import annotations

import pytest

from core.services import create_api_token
from incidents.models import Incident
from tests.conftest import wait_for
from tests.worker.test_detection_pipeline import _burst

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_burst_ends_as_one_incident_with_everything_linked(real_worker, client, tenant, administrator):
    _, raw = create_api_token(tenant, actor=administrator, name="gateway", scope="ingest")
    response = client.post(
        "/api/v1/events/",
        _burst("mallory@contoso.example", messages=51, recipients_each=10),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 201, response.content

    def complete() -> Incident | None:
        incident = Incident.objects.filter(mailbox__address="mallory@contoso.example").first()
        if incident is None:
            return None
        kinds = set(incident.alerts.values_list("policy__kind", flat=True))
        linked = incident.restrictions.exists() and incident.investigations.exists()
        # The severity is a roll-up refreshed by each alert's own correlation task: an alert that is raised
        # and then escalated in a later batch reaches the incident in two steps.
        high = incident.severity == "high"
        return incident if {"sending_limit", "restriction"} <= kinds and linked and high else None

    incident = wait_for(
        complete, message="the high-severity incident with both alerts, the restriction and the investigation"
    )
    assert Incident.objects.count() == 1
    assert incident.severity == "high"
    assert incident.title.startswith("Email sending limit exceeded involving")
