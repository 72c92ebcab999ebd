"""Accepted messages on their way from the policy service to the ingest service: the Redis list, its bound,
the forwarder (a thread in-process; a child process under ``run_policy_server``) and a broker that refuses.

The broker is the network edge here: tests that need it slow or refusing wrap the real task sender.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from enforcement.events import events_key, send_task
from tests.conftest import wait_for, worker_database_url

from .conftest import DOMAIN, DUNNO, PolicyClient
from .postfix import free_port

ALICE = f"alice@{DOMAIN}"


def message_event(event_id: str) -> bytes:
    return json.dumps(
        {
            "type": "message",
            "id": event_id,
            "time": "2026-01-05T10:00:00+00:00",
            "sender": ALICE,
            "recipients": ["someone@elsewhere.example"],
        }
    ).encode()


def stored(prefix: str = "postfix:") -> int:
    from mailflow.models import MessageEvent

    return MessageEvent.objects.filter(event_id__startswith=prefix).count()


def test_past_the_list_capacity_new_events_are_dropped_and_counted(
    running_server, connect, make_mailbox, redis_client
):
    make_mailbox(ALICE)
    broker_open = threading.Event()

    def slow_broker(name: str, args: tuple) -> None:
        broker_open.wait(30)
        send_task(name, args)

    key = events_key("default")
    redis_client.rpush(key, message_event("postfix:waiting"))
    server = running_server(events_capacity=2, enqueue=slow_broker)
    # The forwarder took the waiting event and is stuck on the broker: nothing leaves the list now.
    assert wait_for(lambda: redis_client.llen(key) == 0, message="the forwarder's first batch")
    client = connect(server)
    for i in range(3):
        assert client.send_message(ALICE, [f"r{i}@elsewhere.example"]) == DUNNO
    assert wait_for(lambda: server.server.metrics.events_dropped == 1, message="one event dropped")
    assert redis_client.llen(key) == 2
    broker_open.set()
    assert wait_for(lambda: stored() == 3, message="the waiting event and the two that fitted")


def test_a_batch_the_broker_refused_is_forwarded_later(running_server, connect, make_mailbox):
    make_mailbox(ALICE)
    refusals = []

    def flaky_broker(name: str, args: tuple) -> None:
        if not refusals:
            refusals.append(name)
            raise ConnectionError("the broker is restarting")
        send_task(name, args)

    server = running_server(enqueue=flaky_broker)
    assert connect(server).send_message(ALICE, ["one@elsewhere.example"]) == DUNNO
    assert wait_for(lambda: stored() == 1, message="the message event, on the second try")
    assert refusals == ["enforcement.ingest_messages"]
    assert wait_for(lambda: server.server.metrics.forwarder.forwarded.value == 1, message="counted as sent")


@pytest.fixture
def policy_command(transactional_db, redis_client, accepted_domain, tmp_path):
    """``manage.py run_policy_server`` in a subprocess on the test database, tasks in-process (eager)."""
    from django.conf import settings

    started: list[subprocess.Popen] = []

    def start() -> tuple[subprocess.Popen, int]:
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": worker_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_TASK_ALWAYS_EAGER": "true",
        }
        log = tmp_path / "policy.log"
        process = subprocess.Popen(  # noqa: S603 - our own command
            [sys.executable, "manage.py", "run_policy_server", "--listen", f"127.0.0.1:{port}"]
            + ["--trusted-networks", "127.0.0.0/8", "--instance-name", "test"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        started.append(process)
        wait_for(lambda: "listening" in log.read_text() or process.poll() is not None, message="listening")
        assert process.poll() is None, log.read_text()
        return process, port

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def test_the_command_forwards_accepted_messages_from_a_child_process_and_stops_cleanly(
    policy_command, make_mailbox
):
    make_mailbox(ALICE)
    process, port = policy_command()
    forwarders = children(process.pid)  # the forwarder (and multiprocessing's resource tracker)
    assert forwarders, "the event forwarder runs in a child process"
    client = PolicyClient(port)
    try:
        assert client.send_message(ALICE, ["one@elsewhere.example", f"bob@{DOMAIN}"]) == DUNNO
    finally:
        client.close()
    assert wait_for(lambda: stored() == 1, message="the message event")
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert wait_for(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in forwarders), message="its children gone"
    )
