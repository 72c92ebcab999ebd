"""Race two (or more) callers on the real database: the one shape every concurrency test shares."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections, connection


def run_together(*calls: Callable[[], Any], timeout: float = 60) -> tuple[list[Any], list[BaseException]]:
    """Run ``calls`` in threads released by one barrier at the same moment; their results and errors.

    Results and errors come in the order the threads finished. Each thread closes its database connection,
    so the test database can be flushed afterwards. Errors are returned (not raised in the thread, where
    pytest would not see them), for the test to assert on.
    """
    barrier = threading.Barrier(len(calls))
    results: list[Any] = []
    errors: list[BaseException] = []

    def run(call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results.append(call())
        except BaseException as exc:  # noqa: BLE001 - reported to the test's thread
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results, errors
