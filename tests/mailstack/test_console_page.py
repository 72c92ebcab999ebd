"""The Mail servers pages: who may see and change them, secrets shown once, the status per source, the
Test button."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from core.models import AuditEvent
from mailstack.models import MailstackConnection

from .conftest import basic
from .test_mapping import EXPORT

pytestmark = pytest.mark.django_db


def test_every_role_sees_the_page_and_only_administrators_connect(reader_client, operator_client, tenant):
    assert reader_client.get(reverse("console:mailstack_connections")).status_code == 200
    url = reverse("console:mailstack_connect")
    data = {"tenant": tenant.pk, "doveadm_url": "http://127.0.0.1:8080/doveadm/v1"}
    assert reader_client.post(url, data).status_code == 403
    assert operator_client.post(url, data).status_code == 403
    assert not MailstackConnection.objects.exists()


def test_connecting_shows_the_secrets_once_and_keeps_only_their_hashes(
    administrator_client, tenant, mail_redis
):
    response = administrator_client.post(
        reverse("console:mailstack_connect"),
        {"tenant": tenant.pk, "doveadm_url": "http://127.0.0.1:8080/doveadm/v1"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    connection = MailstackConnection.objects.get()
    tenant.refresh_from_db()
    assert tenant.connector_kind == "mailstack"
    secret = html.split('data-secret="rspamd">')[1].split("<")[0]
    assert len(secret) > 30 and secret not in connection.exporter_secret_hash
    assert f"password = &quot;{secret}&quot;" in html  # the Rspamd snippet, filled in
    again = administrator_client.get(
        reverse("console:mailstack_connection", args=[connection.pk])
    ).content.decode()
    assert secret not in again
    assert "data-secret" not in again
    assert AuditEvent.objects.filter(action="mailstack.connection.created").exists()
    assert secret not in json.dumps(list(AuditEvent.objects.values("before", "after")))


def test_a_bad_doveadm_url_is_refused_with_a_message(administrator_client, tenant):
    response = administrator_client.post(
        reverse("console:mailstack_connect"), {"tenant": tenant.pk, "doveadm_url": "ftp://x"}
    )
    assert response.status_code == 400
    assert not MailstackConnection.objects.exists()


def test_the_status_shows_the_last_event_per_source(connected, reader_client):
    Client().post(
        "/hooks/mailstack/default/rspamd",
        data=json.dumps(EXPORT),
        content_type="application/json",
        headers={"Authorization": basic(connected.secrets.exporter)},
    )
    Client().post("/hooks/mailstack/default/rspamd", data="{}", content_type="application/json")
    html = reader_client.get(reverse("console:mailstack_connection", args=[connected.pk])).content.decode()
    row = html.split("Rspamd (sent mail and verdicts)")[1].split("</tr>")[0]
    assert '<td class="num">1</td>' in row
    assert "wrong or missing secret" in row
    assert "Test</button>" not in html  # readers get no buttons


def test_the_test_button_reports_doveadm_unreachable_and_the_missing_requests(
    connected, administrator_client
):
    MailstackConnection.objects.filter(pk=connected.pk).update(doveadm_url="http://127.0.0.1:9/doveadm/v1")
    response = administrator_client.post(reverse("console:mailstack_test", args=[connected.pk]), follow=True)
    html = response.content.decode()
    assert "did not answer: connection refused" in html
    assert "Rspamd exporter: no request received yet" in html
    connected.refresh_from_db()
    assert connected.test_ok is False


def test_rotating_the_secrets_stops_the_old_ones(connected, administrator_client):
    old = connected.secrets.exporter
    administrator_client.post(reverse("console:mailstack_secrets", args=[connected.pk]))
    response = Client().post(
        "/hooks/mailstack/default/rspamd",
        data=json.dumps(EXPORT),
        content_type="application/json",
        headers={"Authorization": basic(old)},
    )
    assert response.status_code == 401
