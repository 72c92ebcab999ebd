"""The policy service's pipelined Redis connection against the real test Redis (and, for a Redis that stops
answering, a socket that never replies)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from enforcement.wire import RedisWire, Script


def run(coroutine):
    """Run ``coroutine`` on a fresh event loop in a thread of its own: the main thread may already have a
    running loop (Playwright's sync API keeps one there while a browser test session is open)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, asyncio.wait_for(coroutine, 30)).result()


async def gather_replies(wire: RedisWire, commands: list[tuple]) -> list:
    """Issue ``commands`` in one loop iteration; their replies (or exceptions), in order."""
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in commands]
    for command, future in zip(commands, futures, strict=True):
        wire.send(command, future.set_result)
    return await asyncio.gather(*futures)


@pytest.fixture
def key_prefix(redis_client):
    return f"soc:policy:test-wire:{uuid.uuid4().hex}"


def test_commands_sent_together_each_get_their_own_reply_in_order(key_prefix):
    async def scenario():
        wire = RedisWire(settings.REDIS_URL)
        try:
            await wire.execute(b"PING")  # connected: what follows goes out pipelined
            commands = []
            for i in range(100):
                commands.append((b"SET", f"{key_prefix}:{i}", i))
                commands.append((b"GET", f"{key_prefix}:{i}"))
            commands.append((b"INCR", f"{key_prefix}:0:text"))
            commands.append((b"LPUSH", f"{key_prefix}:0", "x"))  # the wrong type: an error for this one only
            return await gather_replies(wire, commands)
        finally:
            await wire.close()

    replies = run(scenario())
    assert replies[0:200:2] == [b"OK"] * 100
    assert replies[1:200:2] == [str(i).encode() for i in range(100)]
    assert replies[200] == 1
    assert isinstance(replies[201], ResponseError)


def test_commands_issued_before_the_connection_opens_wait_for_it(key_prefix):
    async def scenario():
        wire = RedisWire(settings.REDIS_URL)
        try:
            return await gather_replies(wire, [(b"SET", key_prefix, "v"), (b"GET", key_prefix)])
        finally:
            await wire.close()

    assert run(scenario()) == [b"OK", b"v"]


def test_it_reconnects_after_redis_drops_the_connection(key_prefix, redis_client):
    async def scenario():
        wire = RedisWire(settings.REDIS_URL)
        try:
            await wire.execute(b"SET", key_prefix, "before")
            lost = asyncio.Event()
            connection_lost = wire.connection_lost

            def on_lost(exc: Exception | None) -> None:
                connection_lost(exc)
                lost.set()

            wire.connection_lost = on_lost  # the event loop calls the protocol's method on the instance
            host, port = wire._transport.get_extra_info("sockname")[:2]
            redis_client.client_kill(f"{host}:{port}")
            await asyncio.wait_for(lost.wait(), timeout=5)  # the close has reached the loop
            return await wire.execute(b"GET", key_prefix)
        finally:
            await wire.close()

    assert run(scenario()) == b"before"


def test_a_redis_that_stops_answering_fails_the_commands_instead_of_hanging():
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers

    async def scenario():
        wire = RedisWire(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", timeout=0.2)
        try:
            return await gather_replies(wire, [(b"PING",), (b"GET", "k")])
        finally:
            await wire.close()

    try:
        replies = run(scenario())
    finally:
        listener.close()
    assert all(isinstance(reply, RedisTimeoutError) for reply in replies)


def test_a_refused_connection_fails_at_once_and_is_retried_later():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]

    async def scenario():
        wire = RedisWire(f"redis://127.0.0.1:{dead}/0", retry_after=60)
        try:
            first = await gather_replies(wire, [(b"PING",)])
            again = await gather_replies(wire, [(b"PING",)])  # within retry_after: no new attempt
            return first, again, wire._connecting
        finally:
            await wire.close()

    first, again, connecting = run(scenario())
    assert isinstance(first[0], RedisConnectionError)
    assert isinstance(again[0], RedisConnectionError) and "unreachable" in str(again[0])
    assert connecting is None


def test_a_script_redis_does_not_know_is_sent_again_with_its_body(key_prefix):
    # A unique body, so Redis has never cached it: EVALSHA is refused (NOSCRIPT) and the wire falls back.
    script = Script(f"-- {key_prefix}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")

    async def scenario():
        wire = RedisWire(settings.REDIS_URL)
        try:
            first = await wire.execute_script(script, [key_prefix], [5])
            second = await wire.execute_script(script, [key_prefix], [2])  # cached by the EVAL now
            return first, second
        finally:
            await wire.close()

    assert run(scenario()) == (5, 7)
