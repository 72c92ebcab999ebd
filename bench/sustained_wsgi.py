"""The WSGI application the sustained-load benchmark serves: the console's own, with one header added.

``X-Bench-Committed`` is the server's wall clock (``time.time()``) when Django hands back the response. Django
calls ``start_response`` only once the view has returned, so for ``POST /api/v1/events/`` it is taken just
after the batch's transaction committed and its ``alerts.evaluate`` task was enqueued: the benchmark measures
detection lag from it rather than from the client's receipt of the answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING
from wsgiref.types import StartResponse, WSGIEnvironment

from soc_console.wsgi import application as console

if TYPE_CHECKING:
    from _typeshed import OptExcInfo

COMMITTED_HEADER = "X-Bench-Committed"


def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    def start(
        status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Callable[[bytes], object]:
        return start_response(status, [*headers, (COMMITTED_HEADER, f"{time.time():.6f}")], exc_info)

    return console(environ, start)
