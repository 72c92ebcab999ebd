"""A pipelining Redis connection for the policy service's hot path (one socket, no pool, no per-call timers).

redis-py's asyncio client costs about 100 µs of Python per command here (a pool checkout, a timeout per
call, a stream reader, a generic parser): at 2,000 requests/s on one core that was a fifth of the CPU and
the main cause of queueing in the tail. :class:`RedisWire` speaks RESP2 over one connection as an
:class:`asyncio.Protocol`. A command on an idle connection is written at once; commands issued while replies
are outstanding go out together at the end of the loop iteration (32 Postfix connections asking at once cost
one round trip, not 32). Replies are parsed as they arrive and handed to each command's callback in order,
in the same iteration: no future, no task, no extra turn of the loop.

**Failures.** A command whose reply takes longer than ``timeout`` (one watchdog timer, not one per command)
or a lost connection fails every outstanding command with :class:`redis.exceptions.ConnectionError` /
``TimeoutError``; the next command reconnects (after a refused connection, not before ``retry_after``, so a
dead Redis answers at once instead of being hammered). Error replies fail their own command with
:class:`redis.exceptions.ResponseError`. Scripts are loaded when a connection opens; a script Redis forgot
(``SCRIPT FLUSH``) is sent again with ``EVAL``.

Only what the policy service needs: commands and scripts, ``redis://``, ``rediss://`` and ``unix://`` URLs
with a password, a user and a database. The ORM threads and the restriction services keep using redis-py.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from redis.asyncio.connection import SSLConnection, parse_url
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    InvalidResponse,
    NoScriptError,
    RedisError,
    ResponseError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

logger = logging.getLogger(__name__)

Reply = bytes | int | list | None
Callback = Callable[[Reply | Exception], None]


class _Incomplete(Exception):
    """The buffer ends inside a reply: wait for more bytes."""


def encode(args: tuple) -> bytes:
    """One command in RESP (an array of bulk strings)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = b"%d" % arg
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def parse(buffer: bytes, pos: int) -> tuple[Reply | RedisError, int]:
    """The reply starting at ``pos`` and the position after it; raises :class:`_Incomplete`. Bulk strings
    come back as bytes, error replies as exception instances (returned, not raised)."""
    end = buffer.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buffer[pos]
    if kind == 0x3A:  # ':' integer
        return int(buffer[pos + 1 : end]), end + 2
    if kind == 0x24:  # '$' bulk string
        size = int(buffer[pos + 1 : end])
        if size < 0:
            return None, end + 2
        stop = end + 2 + size
        if len(buffer) < stop + 2:
            raise _Incomplete
        return buffer[end + 2 : stop], stop + 2
    if kind == 0x2A:  # '*' array
        count = int(buffer[pos + 1 : end])
        if count < 0:
            return None, end + 2
        items = []
        pos = end + 2
        for _ in range(count):
            item, pos = parse(buffer, pos)
            items.append(item)
        return items, pos
    if kind == 0x2B:  # '+' simple string
        return buffer[pos + 1 : end], end + 2
    if kind == 0x2D:  # '-' error
        message = buffer[pos + 1 : end].decode("utf-8", "replace")
        error = NoScriptError(message) if message.startswith("NOSCRIPT") else ResponseError(message)
        return error, end + 2
    raise InvalidResponse(f"unexpected reply type {chr(kind)!r}")


class Script:
    """A Lua script known by its SHA-1 (loaded on each new connection, ``EVAL`` if Redis forgot it)."""

    __slots__ = ("body", "sha")

    def __init__(self, body: str) -> None:
        self.body = body.encode()
        self.sha = hashlib.sha1(self.body, usedforsecurity=False).hexdigest().encode()


class _Command:
    """One command waiting for its reply."""

    __slots__ = ("callback", "sent_at", "fallback")

    def __init__(self, callback: Callback, sent_at: float, fallback: tuple | None) -> None:
        self.callback = callback
        self.sent_at = sent_at
        self.fallback = fallback

    def complete(self, reply: Reply | Exception) -> None:
        try:
            self.callback(reply)
        except Exception:  # a caller's bug must not break the replies of the others
            logger.exception("A Redis reply callback failed")


class RedisWire(asyncio.Protocol):
    """One pipelined Redis connection (see the module docstring). Use it from its event loop only."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 0.5,
        connect_timeout: float = 0.5,
        retry_after: float = 0.1,
        scripts: tuple[Script, ...] = (),
    ) -> None:
        options = parse_url(url)
        self.host: str = options.get("host", "localhost")
        self.port: int = int(options.get("port", 6379))
        self.path: str | None = options.get("path")
        self.ssl = _ssl_context(options) if options.get("connection_class") is SSLConnection else None
        self.setup = _setup_commands(options, scripts)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retry_after = retry_after
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.Transport | None = None
        self._connecting: asyncio.Task | None = None
        self._closed = False
        self._down_until = 0.0
        self._down_error: Exception | None = None
        self._out: list[bytes] = []  # encoded commands not yet written
        self._unsent: list[_Command] = []  # their callbacks, while no connection is open
        self._waiting: deque[_Command] = deque()  # written, reply not read yet
        self._buffer = b""
        self._flush_scheduled = False
        self._watchdog: asyncio.TimerHandle | None = None

    # -- issuing commands

    def send(self, args: tuple, callback: Callback) -> None:
        """Send one command; ``callback`` gets its reply, or the exception (an instance of
        :class:`redis.exceptions.RedisError`) when Redis refused it or could not be reached. The callback may
        run before ``send`` returns (Redis known to be down)."""
        self._issue(encode(args), callback, None)

    def send_script(self, script: Script, keys: list[str], args: list, callback: Callback) -> None:
        """Run a script; ``callback`` as for :meth:`send`."""
        tail = (len(keys), *keys, *args)
        self._issue(encode((b"EVALSHA", script.sha, *tail)), callback, (b"EVAL", script.body, *tail))

    async def execute(self, *args: bytes | str | int) -> Reply:
        """Await one command's reply (raises the error)."""
        future = asyncio.get_running_loop().create_future()
        self.send(args, partial(_settle, future))
        return await future

    async def execute_script(self, script: Script, keys: list[str], args: list) -> Reply:
        """Await one script's reply (raises the error)."""
        future = asyncio.get_running_loop().create_future()
        self.send_script(script, keys, args, partial(_settle, future))
        return await future

    def _issue(self, data: bytes, callback: Callback, fallback: tuple | None) -> None:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if self._transport is not None:
            command = _Command(callback, loop.time(), fallback)
            if self._waiting or self._out:
                # A round trip is under way: this command goes with the others of this loop iteration.
                self._out.append(data)
                if not self._flush_scheduled:
                    self._flush_scheduled = True
                    loop.call_soon(self._flush)
            else:
                self._transport.write(data)  # idle connection: no reason to wait for the next iteration
            self._waiting.append(command)
            if self._watchdog is None:
                self._watchdog = loop.call_at(command.sent_at + self.timeout, self._check_timeout)
            return
        command = _Command(callback, 0.0, fallback)
        if self._closed:
            command.complete(RedisConnectionError("the connection is closed"))
            return
        if self._connecting is None:
            if loop.time() < self._down_until:
                command.complete(RedisConnectionError(f"Redis is unreachable ({self._down_error})"))
                return
            self._connecting = loop.create_task(self._connect())
        self._out.append(data)
        self._unsent.append(command)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self._transport is not None:
            data = b"".join(self._out)
            self._out.clear()
            self._transport.write(data)

    # -- connecting

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self.path:
                connecting = loop.create_unix_connection(lambda: self, self.path)
            else:
                connecting = loop.create_connection(lambda: self, self.host, self.port, ssl=self.ssl)
            await asyncio.wait_for(connecting, self.connect_timeout)
        except (OSError, TimeoutError) as exc:
            self._connecting = None
            self._down_until = loop.time() + self.retry_after
            self._down_error = exc
            error = RedisConnectionError(f"Could not connect to Redis: {exc}")
            self._out.clear()
            unsent, self._unsent = self._unsent, []
            for command in unsent:
                command.complete(error)
            return
        self._connecting = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(transport, asyncio.Transport)  # a stream connection
        self._transport = transport
        self._buffer = b""
        now = loop.time()
        self._waiting.extend(_Command(self._check_setup, now, None) for _ in self.setup)
        pending, self._out = self._out, []
        unsent, self._unsent = self._unsent, []
        for command in unsent:
            command.sent_at = now
        self._waiting.extend(unsent)
        transport.write(b"".join([*self.setup, *pending]))
        if self._waiting and self._watchdog is None:
            self._watchdog = loop.call_at(now + self.timeout, self._check_timeout)

    def _check_setup(self, reply: Reply | Exception) -> None:
        if isinstance(reply, Exception) and self._transport is not None:
            self._down_error = reply
            self._down_until = asyncio.get_running_loop().time() + self.retry_after
            self._transport.abort()  # AUTH or SELECT refused: nothing on this connection can be trusted

    # -- replies

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        pos = 0
        waiting = self._waiting
        try:
            while pos < len(buffer):
                reply, pos = parse(buffer, pos)
                if not waiting:
                    raise InvalidResponse("a reply nobody asked for")
                command = waiting.popleft()
                if isinstance(reply, NoScriptError) and command.fallback is not None:
                    self._resend(command)
                else:
                    command.complete(reply)
        except _Incomplete:
            pass
        except (InvalidResponse, ValueError, IndexError) as exc:
            self._buffer = b""
            if self._transport is not None:
                self._down_error = exc
                self._transport.abort()
            return
        self._buffer = buffer[pos:] if pos < len(buffer) else b""

    def _resend(self, command: _Command) -> None:
        """Run a script Redis forgot with ``EVAL`` (which also caches it again)."""
        fallback, command.fallback = command.fallback, None
        assert fallback is not None  # only a command with a fallback is resent
        self._out.append(encode(fallback))
        self._waiting.append(command)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _check_timeout(self) -> None:
        self._watchdog = None
        if not self._waiting:
            return
        loop = asyncio.get_running_loop()
        deadline = self._waiting[0].sent_at + self.timeout
        if loop.time() < deadline:
            self._watchdog = loop.call_at(deadline, self._check_timeout)
            return
        self._fail_all(RedisTimeoutError(f"No reply from Redis within {self.timeout}s"))
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._buffer = b""
        self._fail_all(
            RedisConnectionError(f"Lost the Redis connection: {exc or self._down_error or 'closed'}")
        )

    def _fail_all(self, error: Exception) -> None:
        self._out.clear()
        waiting, self._waiting = self._waiting, deque()
        waiting.extend(self._unsent)  # only when closing while a connection was being made
        self._unsent = []
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for command in waiting:
            command.complete(error)

    async def close(self) -> None:
        """Close the connection; outstanding commands fail."""
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
        if self._transport is not None:
            self._transport.close()
        self._fail_all(RedisConnectionError("the connection is closed"))


def _settle(future: asyncio.Future, reply: Reply | Exception) -> None:
    if future.done():
        return
    if isinstance(reply, Exception):
        future.set_exception(reply)
    else:
        future.set_result(reply)


def _setup_commands(options: Mapping[str, Any], scripts: tuple[Script, ...]) -> list[bytes]:
    """What a new connection sends first: AUTH, SELECT and the scripts."""
    commands = []
    if options.get("password"):
        if options.get("username"):
            commands.append(encode((b"AUTH", options["username"], options["password"])))
        else:
            commands.append(encode((b"AUTH", options["password"])))
    if int(options.get("db", 0) or 0):
        commands.append(encode((b"SELECT", int(options["db"]))))
    commands.extend(encode((b"SCRIPT", b"LOAD", script.body)) for script in scripts)
    return commands


def _ssl_context(options: Mapping[str, Any]) -> ssl.SSLContext:
    """A client TLS context honouring the URL's ``ssl_ca_certs`` / ``ssl_cert_reqs`` like redis-py."""
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if str(options.get("ssl_cert_reqs", "required")).lower() in ("none", "optional"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
