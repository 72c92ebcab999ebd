"""A small client of Dovecot's doveadm HTTP API (``POST <url>`` with a JSON list of commands).

Authentication is ``Authorization: X-Dovecot-API <base64(doveadm_api_key)>``. A request carries one or more
commands ``[name, parameters, tag]``; the answer lists ``["doveadmResponse", result, tag]`` or ``["error",
{"type": …, "exitCode": …}, tag]`` per command. Exit codes worth naming: 67 unknown user, 68 nothing matched
(e.g. ``kick`` of a user with no session).

:class:`Unreachable` (refused, timed out, the connection dropped) is worth retrying; :class:`DoveadmError`
(a 401, a command's error) is not, unless the caller decides otherwise.
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass
from typing import Any

import requests

EXIT_UNKNOWN_USER = 67
EXIT_NO_MATCH = 68

_tags = itertools.count(1)


class DoveadmError(Exception):
    """doveadm refused a request or a command failed; ``exit_code`` when doveadm gave one."""

    def __init__(self, message: str, *, exit_code: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.status = status


class Unreachable(DoveadmError):
    """doveadm's HTTP API did not answer (down, refused, timed out): retry later."""


@dataclass
class Result:
    ok: bool
    value: Any
    exit_code: int | None = None


class DoveadmClient:
    def __init__(self, url: str, api_key: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        token = base64.b64encode(api_key.encode()).decode()
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"X-Dovecot-API {token}", "Content-Type": "application/json"}
        )

    def batch(self, commands: list[tuple[str, dict[str, Any]]]) -> list[Result]:
        """Run several commands in one request; one :class:`Result` each, in order."""
        if not commands:
            return []
        tags = [f"c{next(_tags)}" for _ in commands]
        body = [[name, params, tag] for (name, params), tag in zip(commands, tags, strict=True)]
        try:
            response = self.session.post(self.url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise Unreachable(f"doveadm at {self.url} did not answer: {_reason(exc)}") from exc
        if response.status_code in (401, 403):
            raise DoveadmError(
                f"doveadm at {self.url} refused the API key (HTTP {response.status_code}): check "
                "MAILSTACK_DOVEADM_API_KEY against Dovecot's doveadm_api_key.",
                status=response.status_code,
            )
        if response.status_code >= 500:
            raise Unreachable(f"doveadm at {self.url} failed (HTTP {response.status_code})")
        if response.status_code != 200:
            raise DoveadmError(f"doveadm at {self.url} answered HTTP {response.status_code}")
        try:
            answers = response.json()
        except ValueError as exc:
            raise DoveadmError(f"doveadm at {self.url} answered something other than JSON") from exc
        by_tag = {a[2]: a for a in answers if isinstance(a, list) and len(a) == 3}
        results = []
        for tag, (name, _) in zip(tags, commands, strict=True):
            answer = by_tag.get(tag)
            if answer is None:
                raise DoveadmError(f"doveadm gave no answer to {name}")
            if answer[0] == "doveadmResponse":
                results.append(Result(True, answer[1]))
            else:
                detail = answer[1] if isinstance(answer[1], dict) else {}
                code = detail.get("exitCode")
                results.append(Result(False, detail, int(code) if isinstance(code, int) else None))
        return results

    def call(self, name: str, params: dict[str, Any], *, allow: tuple[int, ...] = ()) -> Any:
        """One command's result; a failed command raises :class:`DoveadmError` unless its exit code is one
        of ``allow`` (then None)."""
        result = self.batch([(name, params)])[0]
        if result.ok:
            return result.value
        if result.exit_code in allow:
            return None
        raise DoveadmError(_describe(name, params, result), exit_code=result.exit_code)


def _describe(name: str, params: dict[str, Any], result: Result) -> str:
    user = params.get("user") or params.get("mask") or ""
    what = {EXIT_UNKNOWN_USER: "unknown user", EXIT_NO_MATCH: "nothing matched"}.get(
        result.exit_code or 0, f"{result.value.get('type', 'error')} {result.exit_code or ''}".strip()
    )
    return f"doveadm {name}{f' for {user}' if user else ''} failed: {what}"


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "timed out", "Remote end closed", "Connection reset"):
        if marker in text:
            return marker.lower()
    return exc.__class__.__name__
