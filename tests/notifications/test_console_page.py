"""The Notifications page: every role views it, administrators manage endpoints; a webhook secret is shown
once (``no-store``) and never again."""

from __future__ import annotations

import pytest
from django.urls import reverse

from notifications.models import Attempted, WebhookDelivery, WebhookEndpoint
from notifications.services import create_endpoint, send_test_delivery

pytestmark = pytest.mark.django_db

PAGE = reverse("console:notifications")


def create(client, tenant, url: str = "https://siem.example.com/hook"):
    return client.post(
        PAGE, {"name": "SIEM", "tenant": tenant.pk, "url": url, "event_kinds": ["alert.raised"]}
    )


def test_every_role_opens_the_page_and_an_account_without_a_role_does_not(
    reader_client, operator_client, administrator_client, nobody_client
):
    for client in (reader_client, operator_client, administrator_client):
        assert client.get(PAGE).status_code == 200
    assert nobody_client.get(PAGE).status_code == 403


def test_every_role_sees_the_link(reader_client, administrator_client):
    dashboard = reverse("console:dashboard")
    assert PAGE in reader_client.get(dashboard).content.decode()
    assert PAGE in administrator_client.get(dashboard).content.decode()


def test_a_reader_sees_the_endpoints_without_secrets_or_management_controls(
    tenant, administrator, reader_client
):
    endpoint, secret = create_endpoint(
        tenant, actor=administrator, name="SIEM", url="https://siem.example.com/h"
    )
    page = reader_client.get(PAGE).content.decode()
    assert "https://siem.example.com/h" in page and endpoint.secret_prefix in page
    assert secret not in page
    assert "Add endpoint" not in page
    assert reverse("console:notification_endpoint_disable", args=[endpoint.pk]) not in page
    assert reverse("console:notification_endpoint_test", args=[endpoint.pk]) not in page


def test_only_administrators_manage_endpoints(tenant, administrator, operator_client):
    assert create(operator_client, tenant).status_code == 403
    assert not WebhookEndpoint.objects.exists()
    endpoint, _ = create_endpoint(tenant, actor=administrator, name="SIEM", url="https://siem.example.com/h")
    disable = reverse("console:notification_endpoint_disable", args=[endpoint.pk])
    test = reverse("console:notification_endpoint_test", args=[endpoint.pk])
    assert operator_client.post(disable).status_code == 403
    assert operator_client.post(test).status_code == 403
    endpoint.refresh_from_db()
    assert endpoint.enabled


def test_the_secret_is_shown_once_and_never_again(
    tenant, administrator_client, reader_client, django_capture_on_commit_callbacks
):
    response = create(administrator_client, tenant)
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert endpoint.event_kinds == ["alert.raised"]

    with django_capture_on_commit_callbacks(execute=False):  # the test delivery is queued, not sent
        administrator_client.post(reverse("console:notification_endpoint_test", args=[endpoint.pk]))
    pages = [
        administrator_client.get(PAGE),
        administrator_client.get(PAGE, {"format": "csv"}),
        administrator_client.get(reverse("console:audit_log")),
        administrator_client.get(reverse("console:audit_log"), {"format": "csv"}),
        reader_client.get(reverse("change-feed")),
    ]
    for page in pages:
        assert page.status_code == 200
        content = b"".join(page.streaming_content) if page.streaming else page.content
        assert endpoint.secret not in content.decode()
    assert endpoint.secret_prefix in pages[0].content.decode()


def test_an_invalid_url_is_refused(tenant, administrator_client):
    response = create(administrator_client, tenant, url="ftp://files.example.com/")
    assert response.status_code == 200
    assert not WebhookEndpoint.objects.exists()


def test_disabling_an_endpoint(tenant, administrator, administrator_client):
    endpoint, _ = create_endpoint(tenant, actor=administrator, name="SIEM", url="https://siem.example.com/h")
    response = administrator_client.post(reverse("console:notification_endpoint_disable", args=[endpoint.pk]))
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert not endpoint.enabled


def test_the_delivery_log_filters_and_pages(
    tenant, administrator, administrator_client, django_capture_on_commit_callbacks
):
    endpoint, _ = create_endpoint(tenant, actor=administrator, name="SIEM", url="https://siem.example.com/h")
    with django_capture_on_commit_callbacks(execute=False):
        for _ in range(55):
            send_test_delivery(endpoint, actor=administrator)
    WebhookDelivery.objects.filter(pk=WebhookDelivery.objects.order_by("pk")[0].pk).update(
        status=Attempted.Status.FAILED, last_response_code=502
    )
    html = administrator_client.get(PAGE).content.decode()
    assert "55 results" in html
    assert "Page 1 of 2" in html
    failed = administrator_client.get(PAGE, {"status": "failed"}).content.decode()
    assert "1 result" in failed
    assert "502" in failed


WEBHOOKS = "/api/v1/webhooks/"


def test_the_api_returns_the_secret_once_and_only_to_administrators(
    tenant, administrator_client, operator_client, reader_client, django_capture_on_commit_callbacks
):
    payload = {"name": "SIEM", "url": "https://siem.example.com/hook", "event_kinds": ["alert.raised"]}
    assert operator_client.post(WEBHOOKS, payload, content_type="application/json").status_code == 403
    assert reader_client.get(WEBHOOKS).json()["results"] == []
    created = administrator_client.post(WEBHOOKS, payload, content_type="application/json")
    assert created.status_code == 201
    assert "no-store" in created["Cache-Control"]
    endpoint = WebhookEndpoint.objects.get()
    assert created.json()["secret"] == endpoint.secret
    with django_capture_on_commit_callbacks(execute=False):
        tested = administrator_client.post(f"{WEBHOOKS}{endpoint.pk}/test/")
    assert tested.status_code == 202
    answers = [
        administrator_client.get(WEBHOOKS),
        administrator_client.get(f"{WEBHOOKS}{endpoint.pk}/"),
        administrator_client.get(f"{WEBHOOKS}{endpoint.pk}/deliveries/"),
        administrator_client.post(f"{WEBHOOKS}{endpoint.pk}/disable/"),
    ]
    for answer in answers:
        assert answer.status_code == 200
        assert endpoint.secret not in answer.content.decode()
    assert answers[0].json()["results"][0]["secret_prefix"] == endpoint.secret_prefix
    # Readers read the same list, the endpoint and its log (never the secret); their writes are refused.
    for path in (WEBHOOKS, f"{WEBHOOKS}{endpoint.pk}/", f"{WEBHOOKS}{endpoint.pk}/deliveries/"):
        answer = reader_client.get(path)
        assert answer.status_code == 200 and endpoint.secret not in answer.content.decode()
    assert reader_client.get(WEBHOOKS).json()["results"][0]["url"] == "https://siem.example.com/hook"
    assert reader_client.post(f"{WEBHOOKS}{endpoint.pk}/test/").status_code == 403
    assert reader_client.post(WEBHOOKS, payload, content_type="application/json").status_code == 403
    assert answers[2].json()["results"][0]["kind"] == "webhook.test"
    assert answers[3].json()["enabled"] is False
