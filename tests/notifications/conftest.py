"""Fixtures of the notification tests: a real SMTP server (aiosmtpd) and a real HTTP webhook receiver, each
in a thread on 127.0.0.1, plus helpers to make changes through the real services."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The real-worker test's SMTP server listens here. The worker subprocess is started once per session with a
# copy of os.environ, so its mail settings are set now, at collection, before any worker starts. (The test
# process itself keeps Django's locmem mailer unless a test asks for the SMTP server.)
WORKER_SMTP_PORT = free_port()
os.environ["EMAIL_HOST"] = "127.0.0.1"
os.environ["EMAIL_PORT"] = str(WORKER_SMTP_PORT)
# The receivers below listen on 127.0.0.1, which webhooks refuse unless the administrator allows private
# targets: these tests allow them, in the worker (environment) and in the test process (fixture below).
os.environ["WEBHOOK_ALLOW_PRIVATE_TARGETS"] = "true"


@pytest.fixture(autouse=True)
def _allow_private_webhook_targets(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True


@dataclass
class ReceivedMail:
    at: float
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    def message(self):
        from email import message_from_bytes, policy

        return message_from_bytes(self.content, policy=policy.default)


@dataclass
class SmtpSink:
    """What the SMTP server received, in order."""

    port: int
    mails: list[ReceivedMail] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:
        self.mails.append(
            ReceivedMail(time.monotonic(), envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        )
        return "250 Message accepted"


def start_smtp(port: int) -> tuple[SmtpSink, object]:
    from aiosmtpd.controller import Controller

    sink = SmtpSink(port)
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    return sink, controller


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server; Django's default mailer points at it for the test."""
    port = free_port()
    sink, controller = start_smtp(port)
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 5},
        }
    }
    yield sink
    controller.stop()


@dataclass
class ReceivedRequest:
    at: float
    path: str
    headers: Message  # case-insensitive, as HTTP headers are
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class WebhookReceiver:
    """An HTTP server in a thread that records every POST and answers ``status`` (start / stop at will)."""

    def __init__(self, port: int | None = None, status: int = 204) -> None:
        self.port = port or free_port()
        self.status = status
        self.requests: list[ReceivedRequest] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(ReceivedRequest(time.monotonic(), self.path, self.headers, body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def receiver():
    """A running webhook receiver answering 204."""
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def endpoint_for(administrator):
    """Create a webhook endpoint through the service: returns (endpoint, secret)."""
    from notifications.services import create_endpoint

    def make(tenant, url: str, event_kinds=()):
        return create_endpoint(tenant, actor=administrator, name="SIEM", url=url, event_kinds=event_kinds)

    return make


@pytest.fixture
def quiet_policy():
    """A tenant's policy of ``kind`` that starts no investigation (fewer side changes), with mail settings."""
    from alerts.models import AlertPolicy
    from alerts.services import ensure_default_policies

    def make(tenant, kind: str = AlertPolicy.Kind.FORWARDING, **fields) -> AlertPolicy:
        policy = ensure_default_policies(tenant)[kind]
        AlertPolicy.objects.filter(pk=policy.pk).update(
            investigate_mode=AlertPolicy.InvestigateMode.NEVER, **fields
        )
        policy.refresh_from_db()
        return policy

    return make
