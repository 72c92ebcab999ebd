"""A real Celery worker process, Redis as broker, the PostgreSQL test database: the production wiring."""

import pytest
from django.db import transaction

from core.models import Heartbeat
from core.tasks import beat_heartbeat
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_task_enqueued_on_commit_runs_in_the_worker_and_writes_to_the_database(real_worker):
    with transaction.atomic():
        beat_heartbeat.delay_on_commit()
        # Nothing is sent before the transaction commits.
        assert not Heartbeat.objects.filter(name="beat").exists()
    heartbeat = wait_for(
        lambda: Heartbeat.objects.filter(name="beat").first(), message="the beat heartbeat row"
    )
    assert heartbeat.last_seen is not None


def test_a_rolled_back_transaction_sends_nothing(real_worker):
    from celery.signals import before_task_publish

    published: list[str] = []

    def count(sender=None, **kwargs):
        published.append(sender)

    before_task_publish.connect(count)
    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            beat_heartbeat.delay_on_commit()
            raise RuntimeError("rolled back")
        assert published == []
        with transaction.atomic():
            beat_heartbeat.delay_on_commit()
        assert published == ["core.beat_heartbeat"]
    finally:
        before_task_publish.disconnect(count)
    wait_for(lambda: Heartbeat.objects.filter(name="beat").exists(), message="the committed task's effect")


def test_healthz_sees_the_broker_and_beat_once_the_heartbeat_ran(real_worker, client):
    with transaction.atomic():
        beat_heartbeat.delay_on_commit()
    wait_for(lambda: Heartbeat.objects.filter(name="beat").exists(), message="the beat heartbeat row")
    body = client.get("/healthz").json()
    assert body["broker"] == "ok"
    assert body["beat"]["status"] == "ok"
