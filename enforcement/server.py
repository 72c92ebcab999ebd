"""The Postfix policy service (DESIGN section 9): an asyncio server answering Postfix's policy delegation
protocol from Redis and memory.

**Decisions.** Mail is outbound when the client authenticated (``sasl_username``) or connects from a trusted
network; anything else gets ``DUNNO`` at once. The sender is the mailbox the SASL login maps to, else
``sender``, without its sub-address tag (``RECIPIENT_DELIMITER``). At ``RCPT`` a sender with a restriction key
is refused (``550 5.1.8``); the recipient is remembered under the message's ``instance`` (in memory, bounded).
At ``END-OF-MESSAGE`` the message's recipients are counted (internal / external by the accepted domains) in
the Redis windows of :mod:`enforcement.windows`; over a limit of the sending-limit policy the service sets the
restriction key at once, refuses the message and enqueues ``enforcement.place_restriction`` (the database row,
then the alert); under, it answers ``DUNNO`` and queues a ``message`` event (id from the queue id, see
:mod:`mailflow.postfix_ids`; else ``postfix:<instance>``) for the ingest service.

**Hot path.** The event loop touches Redis and memory only, through one pipelined connection
(:mod:`enforcement.wire`): an ``RCPT`` costs one ``EXISTS``, an ``END-OF-MESSAGE`` one script call, and
commands issued while others are in flight leave together. Decisions run in the reply's callbacks; only a
breach goes through a task. Accepted messages are appended to a Redis list in bursts and forwarded to the
ingest task by another process (:mod:`enforcement.events`), so no serialization for Celery competes with the
loop for the GIL.

**Threads.** The ORM runs in worker threads, off the loop: the snapshot of policy, domains, logins and
releases (:mod:`enforcement.snapshot`, at start and every minute), enqueuing a restriction, and on a breach
one look-up of today's releases of that mailbox (a release must be honoured at once, not a minute later;
breaches are rare: once restricted, a sender is refused at ``RCPT``).

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
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from django.conf import settings
from redis.exceptions import RedisError

from mailboxes.addresses import base_address
from mailflow.postfix_ids import postfix_event_id
from mailflow.ratewindow import SendingLimits
from restricted_users import state
from restricted_users.services import next_utc_midnight

from . import snapshot as snapshots
from .events import BATCH as EVENTS_BATCH
from .events import CAPACITY as EVENTS_CAPACITY
from .events import (
    Counters,
    EventForwarder,
    ForwarderProcess,
    ForwarderThread,
    encode_event,
    events_key,
    send_task,
)
from .protocol import DUNNO, Request, RequestReader, answer
from .snapshot import Network, Snapshot
from .windows import COUNT_SCRIPT, LIMIT_NAMES, first_over, script_args, window_keys
from .wire import RedisWire, Reply, Script

logger = logging.getLogger(__name__)

REJECT_ACTION = "550 5.1.8 Access denied, bad outbound sender"
REJECT = answer(REJECT_ACTION)
MAX_INSTANCES = 20_000
MAX_RECIPIENTS_KEPT = 1_000
RELEASE_LOOKUP_TIMEOUT = 1.0
PLACE_TASK = "enforcement.place_restriction"
EVENTS_PUSH_DELAY = 0.1  # accepted messages wait at most this long in memory before going to Redis
COUNT = Script(COUNT_SCRIPT)


# ------------------------------------------------------------------------------------------------ metrics


@dataclass
class Metrics:
    """Counters exposed at ``/metrics``: touched only from the event loop (the forwarder's: shared memory)."""

    requests: int = 0
    answers: dict[str, int] = field(default_factory=lambda: {"dunno": 0, "reject": 0})
    errors: dict[str, int] = field(default_factory=dict)
    connections_open: int = 0
    connections_total: int = 0
    restrictions_placed: int = 0
    events_queued: int = 0
    events_dropped: int = 0
    forwarder: Counters = field(default_factory=Counters)
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
            f'soc_policy_events_total{{state="dropped"}} {self.events_dropped + self.forwarder.lost.value}',
            f'soc_policy_events_total{{state="sent"}} {self.forwarder.forwarded.value}',
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


# ------------------------------------------------------------------------------------------------ the server


class Pending:
    """An answer still waiting on Redis (or on a breach's task); its connection writes it in request order."""

    __slots__ = ("answer", "connection")

    def __init__(self) -> None:
        self.answer: bytes | None = None
        self.connection: _PolicyConnection | None = None

    def resolve(self, answer: bytes) -> None:
        if self.answer is None:
            self.answer = answer
            if self.connection is not None:
                self.connection.drain()


@dataclass(slots=True)
class _Accepted:
    """An END-OF-MESSAGE request and what it becomes if the message is accepted (a ``message`` event)."""

    request: Request
    sender: str
    recipients: list[str]
    at: datetime


@dataclass(slots=True)
class _Counting:
    """A message being counted in the windows: what the decision needs when Redis answers."""

    accepted: _Accepted
    snapshot: Snapshot
    values: tuple[int, int, int]  # external, internal, total recipients
    message_id: str
    release: snapshots.Release | None
    answer: Pending


def _sums(reply: Reply) -> list[int] | None:
    """The three window sums :data:`COUNT` returned, or None when the sender is restricted."""
    assert isinstance(reply, list)  # COUNT answers an array
    if int(reply[0]):
        return None
    return [int(v) for v in reply[1:]]


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
        forward_in_process: bool = False,
        events_capacity: int = EVENTS_CAPACITY,
        enqueue: Callable[[str, tuple], None] | None = None,
    ) -> None:
        self.tenant_slug = tenant_slug
        self.recipient_delimiter = settings.RECIPIENT_DELIMITER
        self.trusted_networks = trusted_networks
        self.instance_name = instance_name
        self.refresh_seconds = refresh_seconds
        self.metrics = Metrics()
        self.wire = RedisWire(redis_url, timeout=0.5, connect_timeout=0.5, scripts=(COUNT,))
        self.snapshot: Snapshot | None = None
        self.enqueue = enqueue or send_task
        self.ingest = ingest
        self.events_capacity = events_capacity
        self.forwarder: ForwarderThread | ForwarderProcess | None = None
        if ingest and forward_in_process:
            self.forwarder = ForwarderProcess(redis_url, tenant_slug, self.metrics.forwarder)
        elif ingest:
            self.forwarder = ForwarderThread(
                EventForwarder(redis_url, tenant_slug, self.metrics.forwarder, send=self.enqueue)
            )
        self._events: list[bytes] = []
        self._events_timer: asyncio.TimerHandle | None = None
        self._messages: OrderedDict[str, _Message] = OrderedDict()
        self._trusted_cache: dict[str, bool] = {}
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="policy-orm")
        self._servers: list[asyncio.Server] = []
        self._background: set[asyncio.Task] = set()
        self._log = _Throttled()

    # -- life cycle

    async def start(self, host: str, port: int, *, metrics: tuple[str, int] | None = None) -> int:
        """Rebuild the restriction keys, load the snapshot, then listen; returns the bound port."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._rebuild_keys)
        self.snapshot = await loop.run_in_executor(self._pool, self._load)
        self.metrics.snapshot_loaded = time.time()
        if self.forwarder is not None:
            self.forwarder.start()
        server = await loop.create_server(lambda: _PolicyConnection(self), host, port, reuse_address=True)
        self._servers.append(server)
        if metrics is not None:
            self._servers.append(await asyncio.start_server(self._serve_metrics, metrics[0], metrics[1]))
        self._spawn(self._refresh_forever())
        return server.sockets[0].getsockname()[1]

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
        self._push_events()
        with contextlib.suppress(RedisError, OSError):
            await self.wire.execute(b"PING")  # replies come in order: the events' RPUSH is done
        if self.forwarder is not None:
            await loop.run_in_executor(None, self.forwarder.stop)
        await self.wire.close()

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task:
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
            if self.forwarder is not None:
                self.forwarder.ensure_running()
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

    def decide(self, request: Request) -> bytes | Pending:
        """The answer to one request: bytes at once, or a :class:`Pending` answer that Redis's reply (or a
        breach's task) resolves. Never raises."""
        self.metrics.requests += 1
        try:
            return self._decide(request)
        except Exception:
            self.metrics.error("internal")
            logger.exception("Policy decision failed; answering DUNNO")
            return self._dunno()

    def _dunno(self) -> bytes:
        self.metrics.answers["dunno"] += 1
        return DUNNO

    def _reject(self) -> bytes:
        self.metrics.answers["reject"] += 1
        return REJECT

    def _decide(self, request: Request) -> bytes | Pending:
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
            answer = Pending()
            # One EXISTS over both keys: a restricted sender, or an account disabled by a connector.
            self.wire.send(
                (
                    b"EXISTS",
                    state.restriction_key(snapshot.tenant_slug, sender),
                    state.disabled_key(snapshot.tenant_slug, sender),
                ),
                partial(self._answer, answer, self._after_exists, None),
            )
            return answer
        if state_name == "END-OF-MESSAGE":
            return self._end_of_message(request, sender, snapshot)
        return self._dunno()

    def _answer(self, answer: Pending, decide: Callable[..., bytes | None], *args: object) -> None:
        """Resolve ``answer`` with ``decide(*args)`` (None: a task will), or DUNNO when that fails."""
        try:
            result = decide(*args)
        except Exception:
            self.metrics.error("internal")
            logger.exception("Policy decision failed; answering DUNNO")
            result = self._dunno()
        if result is not None:
            answer.resolve(result)

    def _outbound_sender(self, request: Request, snapshot: Snapshot) -> str:
        """The sending mailbox of outbound mail (lowercase), or "" for inbound mail / no sender."""
        login = request.get("sasl_username")
        if not login and not self._trusted(request.get("client_address")):
            return ""
        mailbox = snapshot.mailbox_for_login(login) if login else ""
        # A sub-address (jamal+x@) sends as its mailbox (jamal@): its restriction and counters apply.
        return base_address(mailbox or request.get("sender").strip().lower(), self.recipient_delimiter)

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

    def _on_redis_error(self) -> bytes:
        self.metrics.error("redis")
        self._log.warning("redis", "Redis is unreachable")
        return self._dunno()

    def _after_exists(self, accepted: _Accepted | None, reply: Reply | Exception) -> bytes:
        """RCPT, and END-OF-MESSAGE of a sender the policy does not count: refuse a restricted sender."""
        if isinstance(reply, Exception):
            return self._on_redis_error()
        if reply:
            return self._reject()
        if accepted is not None:
            self._queue_event(accepted)
        return self._dunno()

    def _end_of_message(self, request: Request, sender: str, snapshot: Snapshot) -> bytes | Pending:
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
        accepted = _Accepted(request, sender, recipients, datetime.now(UTC))
        answer = Pending()
        if not (snapshot.restricts and snapshot.is_internal(sender) and snapshot.covers(sender)):
            self.wire.send(
                (b"EXISTS", state.restriction_key(snapshot.tenant_slug, sender)),
                partial(self._answer, answer, self._after_exists, accepted),
            )
            return answer
        counting = _Counting(
            accepted,
            snapshot,
            (external, internal, internal + external),
            f"{instance or 'anon'}:{request.get('queue_id')}",
            snapshot.releases.get(sender),
            answer,
        )
        self.wire.send_script(
            COUNT, *self._count_args(counting), partial(self._answer, answer, self._after_count, counting)
        )
        return answer

    def _count_args(self, counting: _Counting) -> tuple[list[str], list]:
        """Keys and arguments of :data:`COUNT` for a message (counted from the release, if any)."""
        slug, sender, release = counting.snapshot.tenant_slug, counting.accepted.sender, counting.release
        since_ms = int(release.at.timestamp() * 1000) if release is not None else 0
        keys = [state.restriction_key(slug, sender), *window_keys(slug, sender)]
        now_ms = int(counting.accepted.at.timestamp() * 1000)
        return keys, script_args(now_ms, counting.message_id, since_ms, *counting.values)

    def _after_count(self, counting: _Counting, reply: Reply | Exception) -> bytes | None:
        """Under the limits: accept. Over one: a task honours a release the snapshot has not seen yet, else
        restricts (it resolves the answer, so this returns None)."""
        if isinstance(reply, Exception):
            return self._on_redis_error()
        sums = _sums(reply)
        if sums is None:
            return self._reject()
        limits = counting.snapshot.limits_for(counting.accepted.sender, counting.accepted.at)
        over = first_over(limits, sums)
        if over is None:
            self._queue_event(counting.accepted)
            return self._dunno()
        self._spawn(self._breach(counting, limits, over, sums))
        return None

    async def _breach(
        self, counting: _Counting, limits: SendingLimits, over: tuple[str, int, int], sums: list[int]
    ) -> None:
        """Answer a message over a limit once the release look-up (and the restriction) are done."""
        answer = counting.answer
        try:
            result = await self._breach_answer(counting, limits, over, sums)
        except (RedisError, OSError):
            result = self._on_redis_error()
        except asyncio.CancelledError:
            answer.resolve(self._dunno())  # shutting down
            raise
        except Exception:
            self.metrics.error("internal")
            logger.exception("END-OF-MESSAGE decision failed; answering DUNNO")
            result = self._dunno()
        answer.resolve(result)

    async def _breach_answer(
        self, counting: _Counting, limits: SendingLimits, over: tuple[str, int, int] | None, sums: list[int]
    ) -> bytes:
        """Accept after all when a release the snapshot has not seen restarted the counts (or the policy
        does not re-restrict after it); else restrict and refuse."""
        snapshot, accepted, release = counting.snapshot, counting.accepted, counting.release
        fresher = await self._release_lookup(accepted.sender, accepted.at)
        if fresher is not None and (release is None or fresher.at > release.at):
            counting.release = release = fresher
            recounted = _sums(await self.wire.execute_script(COUNT, *self._count_args(counting)))
            if recounted is None:
                return self._reject()
            sums, over = recounted, first_over(limits, recounted)
        if over is None or (
            release is not None
            and snapshot.policy_name in release.policy_names
            and not snapshot.rerestrict_after_release
        ):
            self._queue_event(accepted)
            return self._dunno()
        await self._restrict(snapshot, accepted.sender, accepted.at, over, sums)
        return self._reject()

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
        except Exception:  # noqa: BLE001 - fail open on the lookup: counted, logged, never a 451 for mail
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
        expiry = (b"EX", ttl) if ttl is not None else ()
        await self.wire.execute(
            b"SET",
            state.restriction_key(snapshot.tenant_slug, sender),
            state.key_value(None, snapshot.policy_name, expires_at),
            *expiry,
            b"NX",
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

    def _queue_event(self, accepted: _Accepted) -> None:
        """Keep an accepted message for the ingest service: to Redis within :data:`EVENTS_PUSH_DELAY`."""
        if not self.ingest or not accepted.recipients:
            return
        request = accepted.request
        # Postfix's queue id (present at END-OF-MESSAGE) is what Rspamd exports as ``qid``: both sources name
        # the message alike, so it is one event (mailstack merges the second into the first).
        queue_id = request.get("queue_id")
        event: dict = {
            "type": "message",
            "id": postfix_event_id(queue_id, accepted.at)
            if queue_id
            else f"postfix:{request.get('instance')}",
            "time": accepted.at.isoformat(),
            "sender": accepted.sender,
            "recipients": accepted.recipients,
        }
        if request.get("client_address"):
            event["client_ip"] = request.get("client_address")
        if request.get("size").isdigit():
            event["size"] = int(request.get("size"))
        self._events.append(encode_event(event))
        if len(self._events) >= EVENTS_BATCH:
            self._push_events()
        elif self._events_timer is None:
            self._events_timer = asyncio.get_running_loop().call_later(EVENTS_PUSH_DELAY, self._push_events)

    def _push_events(self) -> None:
        if self._events_timer is not None:
            self._events_timer.cancel()
            self._events_timer = None
        events, self._events = self._events, []
        if events and self.snapshot is not None:
            key = events_key(self.snapshot.tenant_slug)
            self.wire.send((b"RPUSH", key, *events), partial(self._events_pushed, key, len(events)))

    def _events_pushed(self, key: str, count: int, reply: Reply | Exception) -> None:
        if isinstance(reply, Exception):
            self.metrics.events_dropped += count
            self._log.warning("events", "Could not queue %d message events in Redis (%s)", count, reply)
            return
        assert isinstance(reply, int)  # RPUSH answers the list's length
        excess = reply - self.events_capacity
        dropped = min(count, max(0, excess))
        self.metrics.events_queued += count - dropped
        if dropped:
            self.metrics.events_dropped += dropped
            self._log.warning("events_full", "The message-event list is full; dropping new events")
            self.wire.send((b"LTRIM", key, 0, self.events_capacity - 1), _ignore_reply)

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


def _ignore_reply(_: Reply | Exception) -> None:
    """For a command whose outcome changes nothing (trimming the event list)."""


class _PolicyConnection(asyncio.Protocol):
    """One Postfix connection: requests in, answers out in the same order (one may still wait on Redis)."""

    def __init__(self, server: PolicyServer) -> None:
        self.server = server
        self.reader = RequestReader()
        self.pending: deque[bytes | Pending] = deque()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a stream server's connection
        self.transport = transport
        self.server.metrics.connections_open += 1
        self.server.metrics.connections_total += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.metrics.connections_open -= 1
        if self.reader.pending:
            self.server.metrics.error("disconnect_mid_request")
            logger.info("A Postfix connection closed in the middle of a request")
        self.transport = None

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None  # data arrives between connection_made and connection_lost
        pending = self.pending
        for request in self.reader.feed(data):
            result = self.server.decide(request)
            if not pending:
                answer = result if isinstance(result, bytes) else result.answer
                if answer is not None:
                    self.transport.write(answer)
                    continue
            if not isinstance(result, bytes):
                result.connection = self
            pending.append(result)
        if pending:
            self.drain()

    def drain(self) -> None:
        """Write the answers that are ready, in request order."""
        pending = self.pending
        while pending:
            head = pending[0]
            data = head if isinstance(head, bytes) else head.answer
            if data is None:
                return
            pending.popleft()
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(data)
