"""Builders for the policy-service tests: a server in-process on an ephemeral port (its own event loop in a
background thread), a Postfix-like client, mailboxes in an accepted domain, a clean Redis keyspace."""

from __future__ import annotations

import asyncio
import functools
import itertools
import socket
import threading
from collections.abc import Iterator

import pytest

from enforcement.server import PolicyServer
from enforcement.snapshot import parse_networks
from restricted_users import state
from restricted_users.models import CHECKLIST_ITEMS
from tests import builders

ALL_ATTESTED = dict.fromkeys(CHECKLIST_ITEMS, True)
DOMAIN = "corp.example"
REJECT = "action=550 5.1.8 Access denied, bad outbound sender"
DUNNO = "action=DUNNO"
_instances = itertools.count(1)


class RunningServer:
    """A :class:`PolicyServer` on 127.0.0.1:<ephemeral> in a thread of its own."""

    def __init__(self, **options) -> None:
        options.setdefault("tenant_slug", None)
        options.setdefault("trusted_networks", parse_networks("127.0.0.0/8"))
        self.options = options
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: PolicyServer | None = None
        self.port = 0

    def start(self, *, port: int = 0, metrics: bool = False) -> RunningServer:
        self.thread.start()
        self.server = self.call(self._make())
        self.port = self.call(
            self.server.start("127.0.0.1", port, metrics=("127.0.0.1", 0) if metrics else None)
        )
        return self

    async def _make(self) -> PolicyServer:
        from django.conf import settings

        return PolicyServer(redis_url=self.options.pop("redis_url", settings.REDIS_URL), **self.options)

    def call(self, coroutine, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def refresh(self) -> None:
        self.call(self.server.refresh_now())

    def stop(self) -> None:
        """Stop serving (idempotent): the port is closed, queued events are stored."""
        if self.loop.is_closed():
            return
        if self.server is not None:
            self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class PolicyClient:
    """One keep-alive connection speaking Postfix's side of the protocol."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_answer(self) -> str:
        while b"\n\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the policy service closed the connection")
            self.buffer += chunk
        answer, _, self.buffer = self.buffer.partition(b"\n\n")
        return answer.decode()

    def ask(self, **attributes: str) -> str:
        lines = "".join(f"{name}={value}\n" for name, value in attributes.items())
        self.send_raw(lines.encode() + b"\n")
        return self.read_answer()

    def rcpt(self, sender: str, recipient: str, *, instance: str, **extra: str) -> str:
        return self.ask(**_base(sender, instance, extra), protocol_state="RCPT", recipient=recipient)

    def end_of_message(self, sender: str, *, instance: str, recipient_count: int, **extra: str) -> str:
        return self.ask(
            **_base(sender, instance, extra),
            protocol_state="END-OF-MESSAGE",
            recipient_count=str(recipient_count),
        )

    def send_message(self, sender: str, recipients: list[str], **extra: str) -> str:
        """RCPT for each recipient then END-OF-MESSAGE; the first refusal, else the last answer."""
        instance = f"inst{next(_instances)}"
        for recipient in recipients:
            answer = self.rcpt(sender, recipient, instance=instance, **extra)
            if answer != DUNNO:
                return answer
        return self.end_of_message(sender, instance=instance, recipient_count=len(recipients), **extra)

    def close(self) -> None:
        self.sock.close()


def _base(sender: str, instance: str, extra: dict) -> dict:
    attributes = {
        "request": "smtpd_access_policy",
        "protocol_name": "ESMTP",
        "client_address": "127.0.0.1",
        "client_name": "localhost",
        "helo_name": "localhost",
        "sender": sender,
        "sasl_username": "",
        "instance": instance,
        "queue_id": "",
        "size": "1234",
    }
    attributes.update(extra)
    return attributes


@pytest.fixture
def redis_client():
    """The test Redis db without restriction or window keys, before and after the test."""
    with builders.redis_without(state.key_pattern(), "soc:policy:*") as client:
        yield client


@pytest.fixture
def accepted_domain(tenant):
    from mailboxes.models import AcceptedDomain

    return AcceptedDomain.objects.create(tenant=tenant, domain=DOMAIN)


@pytest.fixture
def make_mailbox(tenant, accepted_domain):
    """``make_mailbox(address)``: a mailbox of the test tenant, through the shared builder."""
    return functools.partial(builders.make_mailbox, tenant)


@pytest.fixture
def sending_policy(tenant, administrator):
    """The sending-limit policy with small limits (5 external, 5 internal an hour, 20 a day)."""
    from alerts.models import AlertPolicy
    from alerts.services import ensure_default_policies, update_policy

    policy = ensure_default_policies(tenant)[AlertPolicy.Kind.SENDING_LIMIT]
    return update_policy(
        policy,
        actor=administrator,
        thresholds={"external_per_hour": 5, "internal_per_hour": 5, "total_per_day": 20},
        action=AlertPolicy.Action.RESTRICT_UNTIL_NEXT_DAY,
    )


@pytest.fixture
def running_server(transactional_db, redis_client, accepted_domain) -> Iterator:
    """Start servers with ``running_server(**options)``; all are stopped after the test."""
    started: list[RunningServer] = []

    def start(*, port: int = 0, metrics: bool = False, **options) -> RunningServer:
        server = RunningServer(**options).start(port=port, metrics=metrics)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def connect() -> Iterator:
    clients: list[PolicyClient] = []

    def open_(server: RunningServer) -> PolicyClient:
        client = PolicyClient(server.port)
        clients.append(client)
        return client

    yield open_
    for client in clients:
        client.close()
