"""Webhooks: signed POSTs of each change, retried with backoff while the receiver is down, sent once."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from notifications import services, transport
from notifications.models import Attempted, WebhookDelivery
from tests.alerts.alert_builders import make_alert, make_mailbox
from tests.builders.threads import run_together

from .conftest import WebhookReceiver

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_change_reaches_the_webhook_signed_with_the_endpoint_secret(tenant, receiver, endpoint_for):
    # Subscribed to alerts only: raising the alert also opens an incident (incident.created), not sent here.
    endpoint, secret = endpoint_for(tenant, receiver.url, event_kinds=["alert.raised"])
    alert = make_alert(tenant, make_mailbox(tenant, "alice@example.com"), kind="forwarding_rule")

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-SOC-Signature"], expected)
    assert request.headers["X-SOC-Event"] == "alert.raised"
    assert request.headers["Content-Type"] == "application/json"
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert request.headers["X-SOC-Delivery"] == str(delivery.delivery_id)
    body = request.json()
    assert body["kind"] == "alert.raised"
    assert body["target"] == {"type": "alerts.alert", "id": str(alert.pk)}
    assert body["data"]["user"] == "alice@example.com"
    assert body["console_url"].endswith(f"/alerts/{alert.pk}/")
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == (
        Attempted.Status.SUCCEEDED,
        1,
        204,
    )


def test_a_tampered_body_does_not_match_the_signature(tenant, receiver, endpoint_for):
    _, secret = endpoint_for(tenant, receiver.url)
    make_alert(tenant, make_mailbox(tenant, "alice@example.com"), kind="forwarding_rule")
    request = receiver.requests[0]
    forged = request.body.replace(b"alice", b"mallory")
    assert transport.signature(secret, forged) != request.headers["X-SOC-Signature"]


def test_deliveries_retry_while_the_receiver_is_down_and_arrive_exactly_once(tenant, endpoint_for, settings):
    settings.NOTIFY_RETRY_BACKOFF_SECONDS = 1
    down = WebhookReceiver()  # its port is chosen, nothing listens yet
    endpoint_for(tenant, down.url, event_kinds=["alert.raised"])
    make_alert(tenant, make_mailbox(tenant, "alice@example.com"), kind="forwarding_rule")
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == Attempted.Status.PENDING
    assert delivery.attempts == 1
    assert "refused" in delivery.last_error.lower()
    assert delivery.next_attempt_at > timezone.now()

    # Still down at the next attempt: the backoff doubles.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    services.retry_due()
    delivery.refresh_from_db()
    assert delivery.attempts == 2
    assert delivery.next_attempt_at - timezone.now() > timedelta(seconds=1.5)

    down.start()
    try:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        # Several beats and retries at once: the conditional claim lets exactly one of them send.
        _, errors = run_together(*[services.retry_due] * 4)
        assert errors == []
        services.retry_due()
        assert len(down.requests) == 1
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == (Attempted.Status.SUCCEEDED, 3)
        assert down.requests[0].headers["X-SOC-Delivery"] == str(delivery.delivery_id)
    finally:
        down.stop()


def test_a_delivery_gives_up_after_the_attempt_cap(tenant, endpoint_for, settings):
    settings.NOTIFY_MAX_ATTEMPTS = 2
    endpoint_for(tenant, WebhookReceiver().url, event_kinds=["alert.raised"])
    make_alert(tenant, make_mailbox(tenant, "alice@example.com"), kind="forwarding_rule")
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    services.retry_due()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (Attempted.Status.FAILED, 2)


def test_an_error_answer_is_retried_and_its_code_logged(tenant, endpoint_for):
    failing = WebhookReceiver(status=500).start()
    try:
        endpoint_for(tenant, failing.url, event_kinds=["alert.raised"])
        make_alert(tenant, make_mailbox(tenant, "alice@example.com"), kind="forwarding_rule")
    finally:
        failing.stop()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.last_response_code, delivery.last_error) == (
        Attempted.Status.PENDING,
        500,
        "HTTP 500",
    )


def test_a_rolled_back_change_sends_nothing(tenant, receiver, endpoint_for):
    endpoint_for(tenant, receiver.url)
    alice = make_mailbox(tenant, "alice@example.com")
    with pytest.raises(RuntimeError), transaction.atomic():
        make_alert(tenant, alice, kind="forwarding_rule")
        raise RuntimeError("the surrounding change failed")
    services.dispatch_outbox()
    services.retry_due()
    assert receiver.requests == []
    assert not WebhookDelivery.objects.exists()


def test_an_endpoint_gets_only_the_kinds_it_subscribed_to(tenant, receiver, endpoint_for):
    endpoint_for(tenant, receiver.url, event_kinds=["restriction.placed"])
    make_alert(tenant, make_mailbox(tenant, "alice@example.com"), kind="forwarding_rule")
    assert receiver.requests == []


def test_a_disabled_endpoint_receives_nothing(tenant, receiver, endpoint_for, administrator):
    endpoint, _ = endpoint_for(tenant, receiver.url)
    services.disable_endpoint(endpoint, actor=administrator)
    make_alert(tenant, make_mailbox(tenant, "alice@example.com"), kind="forwarding_rule")
    assert receiver.requests == []


def test_an_endpoint_of_another_tenant_receives_nothing(tenant, other_tenant, receiver, endpoint_for):
    endpoint_for(other_tenant, receiver.url)
    make_alert(tenant, make_mailbox(tenant, "alice@example.com"), kind="forwarding_rule")
    assert receiver.requests == []


def test_a_test_delivery_is_signed_like_the_real_ones(tenant, receiver, endpoint_for, administrator):
    endpoint, secret = endpoint_for(tenant, receiver.url)
    services.send_test_delivery(endpoint, actor=administrator)
    request = receiver.requests[0]
    assert request.headers["X-SOC-Event"] == "webhook.test"
    assert request.headers["X-SOC-Signature"] == transport.signature(secret, request.body)
