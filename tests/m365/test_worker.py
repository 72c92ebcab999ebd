"""A Microsoft 365 pull on a real Celery worker: the pulled telemetry goes through the same ingest, the
same detection (on the suite's real worker) and raises the same alert as any other source."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from celery import current_app
from django.utils import timezone

from alerts.models import Alert
from soc_console.worker_process import worker_process
from tests.conftest import wait_for, worker_database_url
from tests.m365 import fake_m365 as fake
from tests.m365.fixtures import connect_fake

# Its own queue: the suite's worker has no settings for the fake, this one has.
PULL_QUEUE = "m365-test-pull"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_pull_task_on_a_real_worker_feeds_the_same_detections(m365_settings, real_worker, tmp_path: Path):
    m365 = m365_settings
    m365.domains = [fake.domain("contoso.com")]
    m365.users = [fake.user("dave@contoso.com", display_name="Dave")]
    m365.audit_records = [
        fake.audit(
            "Set-Mailbox",
            "admin@contoso.com",
            timezone.now() - timedelta(minutes=30),
            object_id="dave@contoso.com",
            parameters={"Identity": "dave@contoso.com", "ForwardingSmtpAddress": "smtp:dave@mailbox.example"},
        )
    ]
    connection = connect_fake(m365)
    env = {
        "M365_AUTHORITY_HOST": m365.authority_host,
        "M365_GRAPH_URL": m365.graph_url,
        "M365_MANAGEMENT_URL": m365.management_url,
        "M365_CA_BUNDLE": m365.ca_bundle,
        "M365_SETTLE_SECONDS": "0",
    }
    with worker_process(
        worker_database_url(),
        tmp_path / "pull-worker.log",
        name="m365-pull@%h",
        queues=(PULL_QUEUE,),
        env=env,
    ):
        current_app.signature("m365.pull", args=(connection.pk,), kwargs={"force": True}).apply_async(
            queue=PULL_QUEUE
        )
        alert = wait_for(
            lambda: Alert.objects.filter(
                tenant=connection.tenant, title="Suspicious email forwarding activity"
            ).first(),
            timeout=60,
            message="the forwarding alert from the pulled audit record",
        )
    assert alert.mailbox.address == "dave@contoso.com"
    assert any(r.path.endswith("/subscriptions/content") for r in m365.requests)
