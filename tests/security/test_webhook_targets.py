"""Row 9 of issue 15: webhooks refuse loopback, private, link-local, multicast and reserved targets unless
``WEBHOOK_ALLOW_PRIVATE_TARGETS`` is on, when an endpoint is saved (service, console form, API), when it is
tested, and at every delivery. A delivery resolves the host once, checks every address and connects to the
checked one (Host header, SNI and certificate check keep the name), so DNS rebinding cannot redirect it.

DNS is the network edge here: tests replace ``notifications.targets.resolve``; names like ``hooks.test``
resolve nowhere else, so a delivery that reached a receiver through one went to the pinned address."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme
from django.urls import reverse

from notifications import services, targets
from notifications.exceptions import EndpointError
from notifications.models import Attempted, WebhookDelivery, WebhookEndpoint
from tests.notifications.conftest import WebhookReceiver, free_port

pytestmark = pytest.mark.django_db

PUBLIC = "93.184.216.34"
REFUSED_URLS = [
    "http://127.0.0.1:6379/",
    "http://localhost:8000/hook",
    "http://10.0.0.5/hook",
    "http://192.168.1.20/hook",
    "http://172.16.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[fe80::1]/hook",
    "http://[fd00::1]/hook",
    "http://224.0.0.1/hook",
    "http://0.0.0.0/hook",
    "http://100.64.0.1/hook",
    "http://240.0.0.1/hook",
]


@pytest.fixture(autouse=True)
def _private_targets_refused(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False


@pytest.fixture
def dns(monkeypatch):
    """A DNS that answers from a dict (name -> list of addresses), and counts its questions."""

    class FakeDns:
        answers: dict[str, list[str]] = {}
        asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        FakeDns.asked.append(host)
        if host not in FakeDns.answers:
            raise OSError(f"{host}: name or service not known")
        return FakeDns.answers[host]

    FakeDns.answers, FakeDns.asked = {}, []
    monkeypatch.setattr(targets, "resolve", resolve)
    return FakeDns


@pytest.fixture
def receiver():
    server = WebhookReceiver().start()
    yield server
    server.stop()


def create(tenant, actor, url):
    return services.create_endpoint(tenant, actor=actor, name="SIEM", url=url)


def deliver(endpoint, actor, django_capture_on_commit_callbacks) -> WebhookDelivery:
    with django_capture_on_commit_callbacks(execute=False):
        delivery = services.send_test_delivery(endpoint, actor=actor)
    services.deliver_webhook(delivery.pk)
    delivery.refresh_from_db()
    return delivery


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_saving_a_non_public_target_is_refused(tenant, administrator, dns, url):
    dns.answers = {"localhost": ["127.0.0.1", "::1"]}
    with pytest.raises(EndpointError, match="WEBHOOK_ALLOW_PRIVATE_TARGETS"):
        create(tenant, administrator, url)
    assert not WebhookEndpoint.objects.exists()


def test_a_name_resolving_to_a_private_address_is_refused(tenant, administrator, dns):
    dns.answers = {"intranet.example.com": [PUBLIC, "10.1.2.3"]}
    with pytest.raises(EndpointError, match=r"intranet\.example\.com \(10\.1\.2\.3\).*private"):
        create(tenant, administrator, "https://intranet.example.com/hook")


def test_public_targets_and_unresolved_names_are_accepted(tenant, administrator, dns):
    dns.answers = {"siem.example.com": [PUBLIC]}
    create(tenant, administrator, "https://siem.example.com/hook")
    create(tenant, administrator, f"http://{PUBLIC}:8080/hook")
    create(tenant, administrator, "https://not-yet-in-dns.example.com/hook")  # checked again at delivery
    assert WebhookEndpoint.objects.count() == 3


def test_the_setting_allows_private_targets(tenant, administrator, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    endpoint, _ = create(tenant, administrator, "http://10.0.0.5/hook")
    assert endpoint.url == "http://10.0.0.5/hook"


def test_the_console_form_and_the_api_refuse_a_loopback_target(tenant, administrator_client):
    page = administrator_client.post(
        reverse("console:notifications"), {"name": "x", "tenant": tenant.pk, "url": "http://127.0.0.1:6379/"}
    )
    assert page.status_code == 200 and "loopback address" in page.content.decode()
    api = administrator_client.post(
        "/api/v1/webhooks/", {"name": "x", "url": "http://127.0.0.1:6379/"}, content_type="application/json"
    )
    assert api.status_code == 400 and "loopback address" in api.json()["detail"]
    assert not WebhookEndpoint.objects.exists()


def test_testing_an_endpoint_that_became_private_is_refused_at_once(
    tenant, administrator, administrator_client, settings, receiver
):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    endpoint, _ = create(tenant, administrator, receiver.url)
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(EndpointError, match="loopback"):
        services.send_test_delivery(endpoint, actor=administrator)
    response = administrator_client.post(
        reverse("console:notification_endpoint_test", args=[endpoint.pk]), follow=True
    )
    assert "loopback address" in response.content.decode()
    api = administrator_client.post(f"/api/v1/webhooks/{endpoint.pk}/test/")
    assert api.status_code == 400
    assert not WebhookDelivery.objects.exists() and receiver.requests == []


def test_a_delivery_to_a_now_refused_target_fails_for_good_and_sends_nothing(
    tenant, administrator, settings, receiver, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    endpoint, _ = create(tenant, administrator, receiver.url)
    with django_capture_on_commit_callbacks(execute=False):
        delivery = services.send_test_delivery(endpoint, actor=administrator)
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    services.deliver_webhook(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == Attempted.Status.FAILED and delivery.attempts == 1
    assert "loopback address" in delivery.last_error
    assert receiver.requests == []


def test_dns_rebinding_between_save_and_delivery_is_refused(
    tenant, administrator, dns, receiver, django_capture_on_commit_callbacks
):
    url = f"http://hooks.test:{receiver.port}/hook"
    dns.answers = {"hooks.test": [PUBLIC]}
    endpoint, _ = create(tenant, administrator, url)  # public when saved
    dns.answers = {"hooks.test": [PUBLIC, "127.0.0.1"]}  # the attacker's DNS now also answers loopback
    with django_capture_on_commit_callbacks(execute=False):
        delivery = WebhookDelivery.objects.create(endpoint=endpoint, kind="webhook.test", body="{}")
    services.deliver_webhook(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == Attempted.Status.FAILED
    assert "hooks.test (127.0.0.1)" in delivery.last_error
    assert receiver.requests == []


def test_the_delivery_connects_to_the_address_it_checked_with_the_name_in_the_host_header(
    tenant, administrator, dns, receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    dns.answers = {"hooks.test": ["127.0.0.1"]}
    endpoint, _ = create(tenant, administrator, f"http://hooks.test:{receiver.port}/hook?x=1")
    dns.asked.clear()
    delivery = deliver(endpoint, administrator, django_capture_on_commit_callbacks)
    assert delivery.status == Attempted.Status.SUCCEEDED, delivery.last_error
    assert dns.asked == ["hooks.test", "hooks.test"]  # once by the Test button's check, once by the delivery
    [request] = receiver.requests
    assert request.headers["Host"] == f"hooks.test:{receiver.port}"
    assert request.path == "/hook?x=1"


def test_the_checked_addresses_are_tried_in_order_and_no_other(
    tenant, administrator, dns, receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    dns.answers = {"hooks.test": ["127.0.0.2", "127.0.0.1"]}  # nothing listens on 127.0.0.2
    endpoint, _ = create(tenant, administrator, f"http://hooks.test:{receiver.port}/hook")
    delivery = deliver(endpoint, administrator, django_capture_on_commit_callbacks)
    assert delivery.status == Attempted.Status.SUCCEEDED, delivery.last_error
    assert len(receiver.requests) == 1


def test_a_redirect_is_not_followed(tenant, administrator, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.NOTIFY_MAX_ATTEMPTS = 1
    redirector = WebhookReceiver(status=307).start()
    try:
        endpoint, _ = create(tenant, administrator, redirector.url)
        delivery = deliver(endpoint, administrator, django_capture_on_commit_callbacks)
    finally:
        redirector.stop()
    assert delivery.status == Attempted.Status.FAILED and delivery.last_response_code == 307
    assert len(redirector.requests) == 1


class TlsReceiver:
    """An HTTPS receiver on 127.0.0.1 with a certificate for ``name`` from a test CA."""

    def __init__(self, ca: trustme.CA, name: str) -> None:
        self.port = free_port()
        self.requests: list[tuple[str, str | None]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(
                    (self.headers["Host"], getattr(self.connection, "server_hostname", None))
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(name).configure_cert(context)
        self.sni: list[str | None] = []
        context.sni_callback = lambda sock, server_name, ctx: self.sni.append(server_name)
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tls(tmp_path, settings):
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    settings.WEBHOOK_CA_BUNDLE = str(bundle)
    return ca


@pytest.fixture
def deliver_over_tls(tenant, administrator, dns, settings, tls, django_capture_on_commit_callbacks):
    """Deliver to an endpoint at https://hooks.test (resolved to 127.0.0.1) served by a receiver whose
    certificate names ``certificate_for``; the delivery, and the receiver (stopped by then)."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True

    def deliver_to(certificate_for: str) -> tuple[WebhookDelivery, TlsReceiver]:
        server = TlsReceiver(tls, certificate_for)
        try:
            dns.answers = {"hooks.test": ["127.0.0.1"]}
            endpoint, _ = create(tenant, administrator, f"https://hooks.test:{server.port}/hook")
            delivery = deliver(endpoint, administrator, django_capture_on_commit_callbacks)
        finally:
            server.stop()
        return delivery, server

    return deliver_to


def test_https_keeps_sni_and_the_certificate_check_for_the_name(deliver_over_tls):
    delivery, server = deliver_over_tls("hooks.test")
    assert delivery.status == Attempted.Status.SUCCEEDED, delivery.last_error
    assert server.sni == ["hooks.test"]
    assert server.requests[0][0] == f"hooks.test:{server.port}"


def test_https_refuses_a_certificate_for_another_name(deliver_over_tls, settings):
    settings.NOTIFY_MAX_ATTEMPTS = 1
    delivery, server = deliver_over_tls("elsewhere.test")
    assert delivery.status == Attempted.Status.FAILED
    assert "hostname 'hooks.test' doesn't match 'elsewhere.test'" in delivery.last_error
    assert server.requests == []
