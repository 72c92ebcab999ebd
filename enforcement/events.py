"""Accepted messages on their way to the ingest service (DESIGN section 9: "batched into the ingest service
off the hot path").

The event loop appends each accepted message, as JSON, to a Redis list per tenant
(``soc:policy:<tenant>:events``; one ``RPUSH`` per burst, pipelined with the decisions' commands).
:class:`EventForwarder` pops the list in batches (``LPOP key 200``, at least every second) and hands each
batch to the ``enforcement.ingest_messages`` task, which a worker stores through ``ingest_events``.

``run_policy_server`` runs the forwarder in a child process at a lower priority (:class:`ForwarderProcess`):
turning a batch into a Celery message is a few milliseconds of CPU, and in a thread of the server it would
hold the GIL while Postfix waits for answers (that alone made the p99). In-process users of the server (the
tests) run it in a thread (:class:`ForwarderThread`).

The list is bounded (past :data:`CAPACITY` waiting events new ones are dropped and counted), outlives a
restart of the service, and may be shared by several policy services of one tenant (``LPOP`` hands each event
to one forwarder). A batch the broker refused goes back on the list; ingest is idempotent by event id.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .windows import KEY_PREFIX

if TYPE_CHECKING:
    import redis  # imported in the forwarder process only

logger = logging.getLogger(__name__)

INGEST_TASK = "enforcement.ingest_messages"
BATCH = 200
CAPACITY = 100_000
INTERVAL = 1.0
DRAIN_TIMEOUT = 10.0
FORWARDER_NICENESS = 10

_spawn = multiprocessing.get_context("spawn")


def events_key(tenant_slug: str) -> str:
    """The list of one tenant's accepted messages waiting for the ingest service."""
    return f"{KEY_PREFIX}:{tenant_slug}:events"


_encoder = json.JSONEncoder(separators=(",", ":"))  # one instance: json.dumps(separators=…) builds one a call


def encode_event(event: dict) -> bytes:
    return _encoder.encode(event).encode()


class Counters:
    """Events the forwarder handed to the ingest task, and lost (the broker and Redis both refused them);
    shared memory, so the server's ``/metrics`` sees a child process's counts."""

    def __init__(self) -> None:
        self.forwarded = _spawn.RawValue("q", 0)
        self.lost = _spawn.RawValue("q", 0)


def send_task(name: str, args: tuple) -> None:
    """Send a task by name (honours eager mode in embedded setups, like the restriction services do)."""
    from core.queueing import enqueue

    enqueue(name, *args)


class EventForwarder:
    """Moves a tenant's accepted messages from the Redis list to the ingest task, ``batch_size`` at a time,
    until :meth:`stop_soon`; then forwards what is left (for at most :data:`DRAIN_TIMEOUT` seconds)."""

    def __init__(
        self,
        redis_url: str,
        tenant_slug: str | None,
        counters: Counters,
        *,
        send: Callable[[str, tuple], None] = send_task,
        batch_size: int = BATCH,
        interval: float = INTERVAL,
    ) -> None:
        self.redis_url = redis_url
        self.tenant_slug = tenant_slug
        self.counters = counters
        self.send = send
        self.batch_size = batch_size
        self.interval = interval
        self._stopping = threading.Event()

    def stop_soon(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=5, socket_timeout=5)
        tenant: tuple[int, str] | None = None
        deadline = None
        while True:
            if deadline is None and self._stopping.is_set():
                deadline = time.monotonic() + DRAIN_TIMEOUT
            batch: list[bytes | str] = []
            try:
                tenant = tenant or self._tenant()
                popped = client.lpop(events_key(tenant[1]), self.batch_size)
                batch = popped if isinstance(popped, list) else []  # a list, or None for an empty key
                if batch:
                    self._hand_over(client, tenant, batch)
            except Exception:
                logger.exception("Could not forward message events to the ingest task; retrying")
                batch = []
            if deadline is not None and (not batch or time.monotonic() > deadline):
                return
            if len(batch) < self.batch_size and deadline is None:
                self._stopping.wait(self.interval)

    def _tenant(self) -> tuple[int, str]:
        from django.db import connections

        from .snapshot import resolve_tenant

        try:
            tenant = resolve_tenant(self.tenant_slug)
            return tenant.pk, tenant.slug
        finally:
            connections.close_all()

    def _hand_over(self, client: redis.Redis, tenant: tuple[int, str], batch: list[bytes | str]) -> None:
        from django.db import connections

        try:
            self.send(INGEST_TASK, (tenant[0], [json.loads(item) for item in batch]))
            self.counters.forwarded.value += len(batch)
        except Exception:
            logger.exception("Could not hand %d message events to the ingest task; they wait on", len(batch))
            try:
                client.rpush(events_key(tenant[1]), *batch)
            except Exception:
                self.counters.lost.value += len(batch)
                logger.exception("Lost %d message events (Redis refused them back)", len(batch))
            self._stopping.wait(self.interval)
        finally:
            connections.close_all()  # in eager mode the task ran here, on this thread's connection


class ForwarderThread:
    """The forwarder in a thread of this process (in-process servers: the tests)."""

    def __init__(self, forwarder: EventForwarder) -> None:
        self.forwarder = forwarder
        self._thread = threading.Thread(target=forwarder.run, name="policy-event-forwarder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def ensure_running(self) -> None:
        if not self._thread.is_alive():
            logger.error("The message-event forwarder thread died")

    def stop(self, timeout: float = DRAIN_TIMEOUT + 5) -> None:
        self.forwarder.stop_soon()
        if self._thread.is_alive():
            self._thread.join(timeout)


class ForwarderProcess:
    """The forwarder in a child process (``run_policy_server``): spawned, so it sets Django up afresh, and
    restarted if it dies. (Spawning imports the launching script again as ``__mp_main__``: ``manage.py`` and
    ``django-admin`` only run a command under ``if __name__ == "__main__"``.)"""

    def __init__(self, redis_url: str, tenant_slug: str | None, counters: Counters) -> None:
        self.args = (redis_url, tenant_slug, counters)
        self._process: multiprocessing.process.BaseProcess | None = None

    def start(self) -> None:
        self._process = _spawn.Process(
            target=run_forwarder_process,
            args=(*self.args, os.getpid()),
            name="policy-event-forwarder",
            daemon=True,
        )
        self._process.start()

    def ensure_running(self) -> None:
        if self._process is not None and not self._process.is_alive():
            logger.error(
                "The message-event forwarder exited (code %s); restarting it", self._process.exitcode
            )
            self.start()

    def stop(self, timeout: float = DRAIN_TIMEOUT + 5) -> None:
        """Ask it to forward what is left and exit (SIGTERM); kill it past ``timeout``."""
        process = self._process
        if process is None or not process.is_alive():
            return
        process.terminate()
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join()


def run_forwarder_process(redis_url: str, tenant_slug: str | None, counters: Counters, parent: int) -> None:
    """Entry point of :class:`ForwarderProcess`'s child (``parent``: the server's pid)."""
    import django

    django.setup()
    os.nice(FORWARDER_NICENESS)  # the event loop answering Postfix comes first
    forwarder = EventForwarder(redis_url, tenant_slug, counters)
    signal.signal(signal.SIGTERM, lambda *_: forwarder.stop_soon())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent stops us

    def stop_when_orphaned() -> None:  # the server was killed (SIGKILL, OOM): forward what is left, exit
        while os.getppid() == parent:
            time.sleep(1)
        forwarder.stop_soon()

    threading.Thread(target=stop_when_orphaned, name="orphan-watch", daemon=True).start()
    forwarder.run()
