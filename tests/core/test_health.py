from datetime import timedelta

import pytest
from django.utils import timezone

from core.services import record_heartbeat


@pytest.mark.django_db
def test_healthz_answers_without_login_and_reports_production_mode(client):
    record_heartbeat("beat")
    response = client.get("/healthz")
    body = response.json()
    assert body["mode"] == "production"
    assert body["database"] == "ok"
    assert body["broker"] == "ok"
    assert body["beat"]["status"] == "ok"
    assert response.status_code == 200


@pytest.mark.django_db
def test_healthz_fails_when_beat_was_never_seen(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["beat"]["status"] == "error: never seen"


@pytest.mark.django_db
def test_healthz_fails_when_beat_is_stale(client, time_machine):
    record_heartbeat("beat")
    time_machine.move_to(timezone.now() + timedelta(minutes=10))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["beat"]["status"] == "error: stale"
