"""The Postfix policy service (DESIGN section 9): an asyncio server answering Postfix's policy delegation
protocol from Redis and memory.

**Decisions.** Mail is outbound when the client authenticated (``sasl_username``) or connects from a trusted
network; anything else gets ``DUNNO`` at once. The sender is the mailbox the SASL login maps to, else
``sender``. At ``RCPT`` a sender with a restriction key is refused (``550 5.1.8``); the recipient is
remembered under the message's ``instance`` (in memory, bounded). At ``END-OF-MESSAGE`` the message's
recipients are counted (internal / external by the accepted domains) in the Redis windows of
:mod:`enforcement.windows`; over a limit of the sending-limit policy the service sets the restriction key at
once, refuses the message and enqueues ``enforcement.place_restriction`` (the database row, then the alert);
under, it answers ``DUNNO`` and queues a ``message`` event (id ``postfix:<instance>``) for the ingest service.

**Threads.** The event loop touches Redis and memory only. The ORM runs in worker threads: the snapshot of
policy, domains, logins and releases (:mod:`enforcement.snapshot`, at start and every minute), the event sink
(batches of accepted messages handed every second or 200 events to ``enforcement.ingest_messages``, which a
worker stores through ``ingest_events``), enqueuing tasks, and on a breach one look-up of
today's releases of that mailbox (a release must be honoured at once, not a minute later; breaches are rare:
once restricted, a sender is refused at ``RCPT``).

**Never stops mail.** A malformed request, an overlong line, a disconnect, Redis or the database down: a
logged ``DUNNO`` (and an error counter), never an exception out of the loop.

**Metrics.** ``--metrics-listen HOST:PORT`` serves ``GET /metrics`` in the Prometheus text format: requests,
answers by action (``dunno`` / ``reject``), errors by reason, open connections, events queued / sent to
ingest / dropped, restrictions placed, and the snapshot's age.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from restricted_users import state
from restricted_users.services import next_utc_midnight

from . import snapshot as snapshots
from .protocol import DUNNO, Request, RequestReader, answer
from .snapshot import Network, Snapshot
from .windows import COUNT_SCRIPT, LIMIT_NAMES, first_over, script_args, window_keys

logger = logging.getLogger(__name__)

REJECT_ACTION = "550 5.1.8 Access denied, bad outbound sender"
REJECT = answer(REJECT_ACTION)
MAX_INSTANCES = 20_000
MAX_RECIPIENTS_KEPT = 1_000
RELEASE_LOOKUP_TIMEOUT = 1.0
PLACE_TASK = "enforcement.place_restriction"
INGEST_TASK = "enforcement.ingest_messages"


# ------------------------------------------------------------------------------------------------ metrics


@dataclass
class Metrics:
    """Counters exposed at ``/metrics`` (touched only from the event loop, except the event sink's)."""

    requests: int = 0
    answers: dict[str, int] = field(default_factory=lambda: {"dunno": 0, "reject": 0})
    errors: dict[str, int] = field(default_factory=dict)
    connections_open: int = 0
    connections_total: int = 0
    restrictions_placed: int = 0
    events_queued: int = 0
    events_dropped: int = 0
    events_sent: int = 0
    snapshot_loaded: float = 0.0

    def error(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1

    def render(self) -> str:
        lines = [
            "# TYPE soc_policy_requests_total counter",
            f"soc_policy_requests_total {self.requests}",
            "# TYPE soc_policy_answers_total counter",
            *(f'soc_policy_answers_total{{action="{k}"}} {v}' for k, v in sorted(self.answers.items())),
            "# TYPE soc_policy_errors_total counter",
            *(f'soc_policy_errors_total{{reason="{k}"}} {v}' for k, v in sorted(self.errors.items())),
            "# TYPE soc_policy_connections_open gauge",
            f"soc_policy_connections_open {self.connections_open}",
            "# TYPE soc_policy_connections_total counter",
            f"soc_policy_connections_total {self.connections_total}",
            "# TYPE soc_policy_restrictions_placed_total counter",
            f"soc_policy_restrictions_placed_total {self.restrictions_placed}",
            "# TYPE soc_policy_events_total counter",
            f'soc_policy_events_total{{state="queued"}} {self.events_queued}',
            f'soc_policy_events_total{{state="dropped"}} {self.events_dropped}',
            f'soc_policy_events_total{{state="sent"}} {self.events_sent}',
            "# TYPE soc_policy_snapshot_age_seconds gauge",
            f"soc_policy_snapshot_age_seconds {time.time() - self.snapshot_loaded:.1f}"
            if self.snapshot_loaded
            else "soc_policy_snapshot_age_seconds -1",
        ]
        return "\n".join(lines) + "\n"


class _Throttled:
    """At most one log line per reason per interval (a Redis outage must not flood the log)."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}

    def warning(self, reason: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(reason, -self.interval) >= self.interval:
            self._last[reason] = now
            logger.warning(message + "; answering DUNNO", *args)


# ------------------------------------------------------------------------------------------------ event sink


class EventSink:
    """Queues accepted messages as ``message`` events and hands them, from a thread, in batches (every
    ``interval`` seconds or ``batch_size`` events) to the ``enforcement.ingest_messages`` task, which stores
    them through ``ingest_events`` (lenient mode, source ``postfix``) in a worker. Ingesting in this process
    would make its CPU-bound ORM work compete with the event loop for the GIL. Bounded: past ``capacity``
    waiting events new ones are dropped and counted, so a stalled broker never grows memory without end."""

    def __init__(
        self,
        tenant_id: Callable[[], int | None],
        metrics: Metrics,
        send: Callable[[str, tuple], None],
        *,
        capacity: int = 100_000,
        batch_size: int = 200,
        interval: float = 1.0,
    ) -> None:
        self.tenant_id = tenant_id
        self.metrics = metrics
        self.send = send
        self.batch_size = batch_size
        self.interval = interval
        self._queue: queue.Queue[dict | None] = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._run, name="policy-event-sink", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, event: dict) -> None:
        try:
            self._queue.put_nowait(event)
            self.metrics.events_queued += 1
        except queue.Full:
            self.metrics.events_dropped += 1

    def stop(self, timeout: float = 10.0) -> None:
        """Send what is queued and stop the thread."""
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=timeout)
            self._thread.join(timeout)

    def _run(self) -> None:
        batch: list[dict] = []
        deadline = time.monotonic() + self.interval
        stopping = False
        while not stopping:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
            except queue.Empty:
                pass
            if batch and (stopping or len(batch) >= self.batch_size or time.monotonic() >= deadline):
                self._hand_over(batch)
                batch = []
            if time.monotonic() >= deadline:
                deadline = time.monotonic() + self.interval

    def _hand_over(self, batch: list[dict]) -> None:
        from django.db import connections

        try:
            self.send(INGEST_TASK, (self.tenant_id(), batch))
            self.metrics.events_sent += len(batch)
        except Exception:
            self.metrics.events_dropped += len(batch)
            logger.exception("Could not hand %d message events to the ingest task", len(batch))
        finally:
            connections.close_all()  # in eager mode the task ran here, on this thread's connection


# ------------------------------------------------------------------------------------------------ Redis


class RestrictionLookups:
    """Batches the restriction-key reads of one loop iteration into one ``MGET`` (32 connections asking at
    once cost one round trip, not 32)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._keys: list[str] = []
        self._waiters: list[tuple[asyncio.Future, Callable[[str | None], bytes], Callable[[], bytes]]] = []

    def lookup(
        self, key: str, on_value: Callable[[str | None], bytes], on_error: Callable[[], bytes]
    ) -> asyncio.Future:
        """A future resolved with ``on_value(value)`` (None: no key) or ``on_error()``; it never raises."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._keys:
            loop.call_soon(self._flush)
        self._keys.append(key)
        self._waiters.append((future, on_value, on_error))
        return future

    def _flush(self) -> None:
        keys, waiters = self._keys, self._waiters
        self._keys, self._waiters = [], []
        asyncio.get_running_loop().create_task(self._run(keys, waiters))

    async def _run(self, keys: list[str], waiters: list) -> None:
        try:
            values = await self.client.mget(keys)
        except (RedisError, OSError):
            for future, _, on_error in waiters:
                if not future.done():
                    future.set_result(on_error())
            return
        for (future, on_value, _), value in zip(waiters, values, strict=True):
            if not future.done():
                future.set_result(on_value(value))


# ------------------------------------------------------------------------------------------------ the server


@dataclass(slots=True)
class _Message:
    """What the RCPT requests of one message (one ``instance``) told us."""

    sender: str
    recipients: list[str] = field(default_factory=list)
    seen: int = 0


class PolicyServer:
    """One tenant's policy service. ``start`` binds and loads; ``stop`` closes and flushes."""

    def __init__(
        self,
        *,
        tenant_slug: str | None,
        redis_url: str,
        trusted_networks: tuple[Network, ...] = (),
        instance_name: str = "policy",
        refresh_seconds: float = 60.0,
        ingest: bool = True,
        enqueue: Callable[[str, tuple], None] | None = None,
    ) -> None:
        self.tenant_slug = tenant_slug
        self.trusted_networks = trusted_networks
        self.instance_name = instance_name
        self.refresh_seconds = refresh_seconds
        self.metrics = Metrics()
        self.redis = aioredis.Redis.from_url(
            redis_url,
            decode_responses=True,
            socket_connect_timeout=0.5,
            socket_timeout=0.5,
            max_connections=64,
        )
        self.lookups = RestrictionLookups(self.redis)
        self.snapshot: Snapshot | None = None
        self.enqueue = enqueue or _send_task
        self.sink = EventSink(self._tenant_id, self.metrics, self.enqueue) if ingest else None
        self._messages: OrderedDict[str, _Message] = OrderedDict()
        self._trusted_cache: dict[str, bool] = {}
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="policy-orm")
        self._servers: list[asyncio.AbstractServer] = []
        self._background: set[asyncio.Task] = set()
        self._script = self.redis.register_script(COUNT_SCRIPT)
        self._log = _Throttled()

    # -- life cycle

    async def start(self, host: str, port: int, *, metrics: tuple[str, int] | None = None) -> int:
        """Rebuild the restriction keys, load the snapshot, then listen; returns the bound port."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._rebuild_keys)
        self.snapshot = await loop.run_in_executor(self._pool, self._load)
        self.metrics.snapshot_loaded = time.time()
        if self.sink is not None:
            self.sink.start()
        server = await loop.create_server(lambda: _PolicyConnection(self), host, port, reuse_address=True)
        self._servers.append(server)
        if metrics is not None:
            self._servers.append(await asyncio.start_server(self._serve_metrics, metrics[0], metrics[1]))
        self._spawn(self._refresh_forever())
        return server.sockets[0].getsockname()[1]

    def _tenant_id(self) -> int | None:
        return self.snapshot.tenant_id if self.snapshot is not None else None

    @property
    def metrics_port(self) -> int | None:
        return self._servers[1].sockets[0].getsockname()[1] if len(self._servers) > 1 else None

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._pool.shutdown)  # let a restriction being enqueued finish
        if self.sink is not None:
            await loop.run_in_executor(None, self.sink.stop)
        await self.redis.aclose()

    def _spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _rebuild_keys(self) -> None:
        from django.db import connections

        from restricted_users.services import sync_restrictions_to_redis

        try:
            tenant = snapshots.resolve_tenant(self.tenant_slug)
            written = sync_restrictions_to_redis(tenant)
            logger.info("Rebuilt %d restriction keys of tenant %s from the database", written, tenant.slug)
        except Exception:
            self.metrics.error("rebuild")
            logger.exception("Could not rebuild the restriction keys; beat's resync will")
        finally:
            connections.close_all()

    def _load(self) -> Snapshot:
        from django.db import connections

        try:
            return snapshots.load_snapshot(self.tenant_slug)
        finally:
            connections.close_all()

    async def _refresh_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                self.snapshot = await loop.run_in_executor(self._pool, self._load)
                self.metrics.snapshot_loaded = time.time()
            except Exception:
                self.metrics.error("snapshot")
                logger.exception("Could not refresh the policy snapshot; keeping the previous one")

    async def refresh_now(self) -> None:
        """Reload the snapshot at once (tests, and after an operator's change if wired)."""
        loop = asyncio.get_running_loop()
        self.snapshot = await loop.run_in_executor(self._pool, self._load)
        self.metrics.snapshot_loaded = time.time()

    # -- decisions

    def decide(self, request: Request) -> bytes | asyncio.Future:
        """The answer to one request: bytes at once, or a future that resolves to bytes (never raises)."""
        metrics = self.metrics
        metrics.requests += 1
        try:
            return self._decide(request)
        except Exception:
            metrics.error("internal")
            logger.exception("Policy decision failed; answering DUNNO")
            return self._dunno()

    def _dunno(self) -> bytes:
        self.metrics.answers["dunno"] += 1
        return DUNNO

    def _reject(self) -> bytes:
        self.metrics.answers["reject"] += 1
        return REJECT

    def _decide(self, request: Request) -> bytes | asyncio.Future:
        if request.error or not request.attributes:
            self.metrics.error("malformed")
            self._log.warning("malformed", "Malformed policy request (%s)", request.error or "empty")
            return self._dunno()
        snapshot = self.snapshot
        if snapshot is None:
            return self._dunno()
        sender = self._outbound_sender(request, snapshot)
        if not sender:
            return self._dunno()
        state_name = request.get("protocol_state").upper()
        if state_name == "RCPT":
            self._remember(request, sender)
            return self.lookups.lookup(
                state.restriction_key(snapshot.tenant_slug, sender),
                self._on_restriction,
                self._on_redis_error,
            )
        if state_name == "END-OF-MESSAGE":
            return self._spawn(self._end_of_message(request, sender, snapshot))
        return self._dunno()

    def _outbound_sender(self, request: Request, snapshot: Snapshot) -> str:
        """The sending mailbox of outbound mail (lowercase), or "" for inbound mail / no sender."""
        login = request.get("sasl_username")
        if not login and not self._trusted(request.get("client_address")):
            return ""
        mailbox = snapshot.mailbox_for_login(login) if login else ""
        return mailbox or request.get("sender").strip().lower()

    def _trusted(self, client_address: str) -> bool:
        if not client_address or not self.trusted_networks:
            return False
        known = self._trusted_cache.get(client_address)
        if known is None:
            import ipaddress

            try:
                ip = ipaddress.ip_address(client_address)
                known = any(ip in network for network in self.trusted_networks)
            except ValueError:
                known = False
            if len(self._trusted_cache) > 10_000:
                self._trusted_cache.clear()
            self._trusted_cache[client_address] = known
        return known

    def _remember(self, request: Request, sender: str) -> None:
        instance = request.get("instance")
        recipient = request.get("recipient").strip().lower()
        if not instance or not recipient:
            return
        message = self._messages.get(instance)
        if message is None:
            message = self._messages[instance] = _Message(sender)
            if len(self._messages) > MAX_INSTANCES:
                self._messages.popitem(last=False)
        if recipient not in message.recipients:
            message.seen += 1
            if len(message.recipients) < MAX_RECIPIENTS_KEPT:
                message.recipients.append(recipient)

    def _on_restriction(self, value: str | None) -> bytes:
        return self._dunno() if value is None else self._reject()

    def _on_redis_error(self) -> bytes:
        self.metrics.error("redis")
        self._log.warning("redis", "Redis is unreachable")
        return self._dunno()

    async def _end_of_message(self, request: Request, sender: str, snapshot: Snapshot) -> bytes:
        try:
            return await self._count_message(request, sender, snapshot)
        except (RedisError, OSError):
            return self._on_redis_error()
        except Exception:
            self.metrics.error("internal")
            logger.exception("END-OF-MESSAGE decision failed; answering DUNNO")
            return self._dunno()

    async def _count_message(self, request: Request, sender: str, snapshot: Snapshot) -> bytes:
        instance = request.get("instance")
        message = self._messages.pop(instance, None) if instance else None
        recipients = message.recipients if message else []
        internal = sum(1 for r in recipients if snapshot.is_internal(r))
        external = len(recipients) - internal
        try:
            declared = int(request.get("recipient_count") or 0)
        except ValueError:
            declared = 0
        seen = message.seen if message else 0
        if declared > seen:
            external += declared - seen  # recipients we did not see: counted as external (the strict side)
        total = internal + external
        now = datetime.now(UTC)
        restriction_key = state.restriction_key(snapshot.tenant_slug, sender)
        counted = snapshot.restricts and snapshot.is_internal(sender) and snapshot.covers(sender)
        if not counted:
            if await self.redis.exists(restriction_key):
                return self._reject()
            self._queue_event(request, sender, recipients, now)
            return self._dunno()
        release = snapshot.releases.get(sender)
        message_id = f"{instance or 'anon'}:{request.get('queue_id')}"
        sums = await self._count(snapshot, sender, message_id, now, release, (external, internal, total))
        if sums is None:
            return self._reject()
        limits = snapshot.limits_for(sender, now)
        over = first_over(limits, sums)
        if over is not None:
            fresher = await self._release_lookup(sender, now)
            if fresher is not None and (release is None or fresher.at > release.at):
                release = fresher
                sums = await self._count(
                    snapshot, sender, message_id, now, release, (external, internal, total)
                )
                if sums is None:
                    return self._reject()
                over = first_over(limits, sums)
        if over is None or (
            release is not None
            and snapshot.policy_name in release.policy_names
            and not snapshot.rerestrict_after_release
        ):
            self._queue_event(request, sender, recipients, now)
            return self._dunno()
        await self._restrict(snapshot, sender, now, over, sums)
        return self._reject()

    async def _count(
        self,
        snapshot: Snapshot,
        sender: str,
        message_id: str,
        now: datetime,
        release,
        values: tuple[int, int, int],
    ) -> list[int] | None:
        """The three window sums after counting the message, or None when the sender is restricted."""
        since_ms = int(release.at.timestamp() * 1000) if release is not None else 0
        keys = [
            state.restriction_key(snapshot.tenant_slug, sender),
            *window_keys(snapshot.tenant_slug, sender),
        ]
        result = await self._script(
            keys=keys, args=script_args(int(now.timestamp() * 1000), message_id, since_ms, *values)
        )
        if int(result[0]):
            return None
        return [int(v) for v in result[1:]]

    async def _release_lookup(self, sender: str, now: datetime) -> snapshots.Release | None:
        """Today's newest release of the sender, from the database (breach path only, off the loop)."""
        loop = asyncio.get_running_loop()

        def lookup() -> snapshots.Release | None:
            from django.db import connections

            try:
                tenant = snapshots.resolve_tenant(self.tenant_slug)
                return snapshots.releases_today(tenant, now, address=sender).get(sender)
            finally:
                connections.close_all()

        try:
            return await asyncio.wait_for(loop.run_in_executor(self._pool, lookup), RELEASE_LOOKUP_TIMEOUT)
        except Exception:
            self.metrics.error("release_lookup")
            self._log.warning("release_lookup", "Could not read today's releases of %s", sender)
            return None

    async def _restrict(
        self, snapshot: Snapshot, sender: str, now: datetime, over: tuple[str, int, int], sums: list[int]
    ) -> None:
        """Set the restriction key at once (the next request is refused), then enqueue the database row."""
        from alerts.models import AlertPolicy

        name, limit, count = over
        until_released = snapshot.action == AlertPolicy.Action.RESTRICT_UNTIL_RELEASED
        expires_at = None if until_released else next_utc_midnight(now)
        ttl = state.ttl_seconds(expires_at, now)
        await self.redis.set(
            state.restriction_key(snapshot.tenant_slug, sender),
            state.key_value(None, snapshot.policy_name, expires_at),
            ex=ttl,
            nx=True,
        )
        self.metrics.restrictions_placed += 1
        logger.warning(
            "Restricting %s: %s %d > %d (policy service %s)", sender, name, count, limit, self.instance_name
        )
        reason = {
            "limit": name,
            "threshold": limit,
            "count": count,
            "counts": dict(zip(LIMIT_NAMES, sums, strict=True)),
            "window_end": now.isoformat(),
            "source": f"postfix policy service {self.instance_name}",
        }
        args = (
            snapshot.tenant_id,
            sender,
            snapshot.policy_name,
            reason,
            expires_at.isoformat() if expires_at else None,
        )
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, self._enqueue_safely, args)
        self._spawn(_awaited(future))

    def _enqueue_safely(self, args: tuple) -> None:
        from django.db import connections

        try:
            self.enqueue(PLACE_TASK, args)
        except Exception:
            self.metrics.error("enqueue")
            logger.exception(
                "Could not enqueue the restriction of %s; the key holds until its expiry", args[1]
            )
        finally:
            connections.close_all()  # in eager mode the task ran on this thread

    def _queue_event(self, request: Request, sender: str, recipients: list[str], now: datetime) -> None:
        if self.sink is None or not recipients:
            return
        event: dict = {
            "type": "message",
            "id": f"postfix:{request.get('instance')}",
            "time": now.isoformat(),
            "sender": sender,
            "recipients": recipients,
        }
        if request.get("client_address"):
            event["client_ip"] = request.get("client_address")
        if request.get("size").isdigit():
            event["size"] = int(request.get("size"))
        self.sink.put(event)

    # -- metrics endpoint

    async def _serve_metrics(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
            if path == b"/metrics":
                body, status = self.metrics.render().encode(), b"200 OK"
            else:
                body, status = b"not found\n", b"404 Not Found"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain; version=0.0.4\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass  # a scraper that went away: nothing to answer
        finally:
            writer.close()


async def _awaited(future: asyncio.Future) -> None:
    await future


def _send_task(name: str, args: tuple) -> None:
    """Send a task by name (honours eager mode in embedded setups, like the restriction services do)."""
    from celery import current_app

    current_app.signature(name, args=args).apply_async()


class _PolicyConnection(asyncio.Protocol):
    """One Postfix connection: requests in, answers out in the same order (one may still wait on Redis)."""

    def __init__(self, server: PolicyServer) -> None:
        self.server = server
        self.reader = RequestReader()
        self.pending: deque[bytes | asyncio.Future] = deque()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.metrics.connections_open += 1
        self.server.metrics.connections_total += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.metrics.connections_open -= 1
        if self.reader.pending:
            self.server.metrics.error("disconnect_mid_request")
            logger.info("A Postfix connection closed in the middle of a request")
        self.transport = None

    def data_received(self, data: bytes) -> None:
        for request in self.reader.feed(data):
            result = self.server.decide(request)
            if isinstance(result, bytes) and not self.pending:
                self.transport.write(result)
                continue
            self.pending.append(result)
            if not isinstance(result, bytes):
                result.add_done_callback(self._drain)
        if self.pending:
            self._drain()

    def _drain(self, _: object = None) -> None:
        pending = self.pending
        while pending:
            head = pending[0]
            if isinstance(head, bytes):
                data = head
            elif head.done():
                data = head.result() if not head.cancelled() else DUNNO
            else:
                return
            pending.popleft()
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(data)
