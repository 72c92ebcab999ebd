"""Decoding of ingest bodies (a JSON array or NDJSON) where every failure is a message, never an exception.

Python's decoder raises more than ``JSONDecodeError`` on hostile input: ``RecursionError`` for an array nested
100,000 deep, ``ValueError`` for an integer past 4,300 digits; it also accepts ``NaN`` and ``Infinity``, which
are not JSON and which PostgreSQL refuses. :func:`decode_json` turns all of them into :class:`DecodeError`;
:func:`decode_array` names the position of the event at fault so the caller can answer with its index.
"""

from __future__ import annotations

import json
from typing import Any

_WHITESPACE = " \t\n\r"


class DecodeError(Exception):
    """The text is not acceptable JSON; ``message`` says why, ``index`` names the event when known."""

    def __init__(self, message: str, *, index: int | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index
        self.line = line


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    message = str(exc)
    if "digits" in message:
        return "an integer has too many digits"
    return message[:200]


def decode_json(text: str) -> Any:
    """One JSON document; :class:`DecodeError` on any failure."""
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise DecodeError(_reason(exc), line=getattr(exc, "lineno", None)) from None


def decode_array(text: str) -> list[Any]:
    """A JSON array of events. On a failure, the array is walked element by element to name the event at
    fault (its index and the line it starts on), so a bad event costs only its own report."""
    try:
        return decode_json(text)
    except DecodeError as whole:
        located = _locate(text)
        if located is None:
            raise whole from None
        raise located from None


def _skip(text: str, position: int) -> int:
    while position < len(text) and text[position] in _WHITESPACE:
        position += 1
    return position


def _locate(text: str) -> DecodeError | None:
    position = _skip(text, 0)
    if position >= len(text) or text[position] != "[":
        return None
    position = _skip(text, position + 1)
    index = 0
    while position < len(text) and text[position] != "]":
        line = text.count("\n", 0, position) + 1
        try:
            _, position = _DECODER.raw_decode(text, position)
        except (ValueError, RecursionError) as exc:
            line = getattr(exc, "lineno", line)  # where the decoder stopped, else where the event starts
            reason = _reason(exc) if hasattr(exc, "lineno") else f"{_reason(exc)} (line {line})"
            return DecodeError(f"Event {index} is not valid JSON: {reason}.", index=index, line=line)
        position = _skip(text, position)
        if position < len(text) and text[position] == ",":
            position = _skip(text, position + 1)
        index += 1
    return None
