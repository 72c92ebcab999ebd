"""Postfix's policy delegation protocol, framing only (no decisions, no I/O).

A request is ``name=value`` lines ended by an empty line; the answer is one ``action=…`` line and an empty
line. A connection carries any number of requests, one after the other. :class:`RequestReader` turns the
bytes of one connection into requests, however they are split across reads, and bounds what it keeps: a line
longer than :data:`MAX_LINE` or a request larger than :data:`MAX_REQUEST` is dropped up to its end and
reported as malformed (answered ``DUNNO``: a policy service never stops mail).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_LINE = 8 * 1024
MAX_REQUEST = 64 * 1024
MAX_ATTRIBUTES = 256

DUNNO = b"action=DUNNO\n\n"


def answer(action: str) -> bytes:
    """The bytes of one answer."""
    return f"action={action}\n\n".encode()


@dataclass(slots=True)
class Request:
    """One parsed request: its attributes (names lowercased, last value wins), or why it is malformed."""

    attributes: dict[str, str] = field(default_factory=dict)
    error: str = ""

    def get(self, name: str) -> str:
        return self.attributes.get(name, "")


class RequestReader:
    """Incremental parser of one connection: ``feed(bytes)`` returns the requests those bytes complete."""

    __slots__ = ("_buffer", "_attributes", "_size", "_error", "_skipping_line")

    def __init__(self) -> None:
        self._buffer = b""
        self._attributes: dict[str, str] = {}
        self._size = 0
        self._error = ""
        self._skipping_line = False  # inside an overlong line: drop bytes up to its newline

    def feed(self, data: bytes) -> list[Request]:
        done: list[Request] = []
        buffer = self._buffer + data if self._buffer else data
        start = 0
        if not (self._attributes or self._size or self._error or self._skipping_line):
            # Whole requests from a clean state, the way Postfix sends them: one decode and split per request.
            while (end := buffer.find(b"\n\n", start)) >= 0:
                request = _whole_request(buffer[start:end])
                if request is None:
                    break  # an edge case: parsed line by line below, with its exact error
                done.append(request)
                start = end + 2
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                rest = buffer[start:]
                if len(rest) > MAX_LINE:
                    self._fail(f"a line is longer than {MAX_LINE} bytes")
                    self._skipping_line = True
                    rest = b""
                self._buffer = rest
                return done
            line = buffer[start:end]
            start = end + 1
            if self._skipping_line:
                self._skipping_line = False
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                done.append(self._finish())
                continue
            self._line(line)

    def _line(self, line: bytes) -> None:
        self._size += len(line) + 1
        if self._error:
            return
        if len(line) > MAX_LINE:
            self._fail(f"a line is longer than {MAX_LINE} bytes")
            return
        if self._size > MAX_REQUEST:
            self._fail(f"the request is larger than {MAX_REQUEST} bytes")
            return
        name, sep, value = line.partition(b"=")
        if not sep or not name:
            self._fail("a line is not name=value")
            return
        if len(self._attributes) >= MAX_ATTRIBUTES:
            self._fail("too many attributes")
            return
        try:
            self._attributes[name.decode("ascii").strip().lower()] = value.decode("utf-8", "replace")
        except UnicodeDecodeError:
            self._fail("an attribute name is not ASCII")

    def _fail(self, error: str) -> None:
        if not self._error:
            self._error = error
        self._attributes = {}

    def _finish(self) -> Request:
        request = Request(self._attributes, self._error)
        self._attributes, self._size, self._error = {}, 0, ""
        return request

    @property
    def pending(self) -> bool:
        """Whether part of a request has arrived (a disconnect now cuts a request short)."""
        return bool(self._buffer or self._attributes or self._error or self._skipping_line)


def _whole_request(block: bytes) -> Request | None:
    """A complete, well-formed request (its lines without the blank one), or None for anything the line
    parser must judge: a blank line, ``\\r``, a line without ``=``, a non-ASCII name, a block past the limits.
    For the requests it accepts, the result is exactly the line parser's."""
    if not block or len(block) > MAX_LINE or b"\r" in block or block.startswith(b"\n"):
        return None
    lines = block.decode("utf-8", "replace").split("\n")
    if len(lines) > MAX_ATTRIBUTES:
        return None
    attributes: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition("=")
        if not sep or not name or not name.isascii():
            return None
        attributes[name.strip().lower()] = value
    return Request(attributes)
