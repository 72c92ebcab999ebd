"""A real Celery worker in a child process, on every queue, against a given database: what the worker test
suites and the benchmarks run (RECIPES.md, "A real Celery worker in the test suite")."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from .celery import app


class WorkerDidNotStart(RuntimeError):
    pass


@contextmanager
def worker_process(
    database_url: str,
    log: Path,
    *,
    name: str = "",
    timeout: float = 60,
    queues: tuple[str, ...] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator:
    """Purge the queues, start ``celery worker --pool=solo`` on them (default: every queue) logging to
    ``log``, wait until it is ready, yield the process, and stop it with SIGTERM afterwards. ``env`` adds
    environment variables (settings) for the worker."""
    queues = queues or settings.TASK_QUEUES
    with app.connection_for_write() as conn:
        for queue in queues:
            conn.default_channel.queue_purge(queue)  # type: ignore[attr-defined]  # kombu's virtual channel
    env = {**os.environ, **(env or {}), "DATABASE_URL": database_url, "CELERY_TASK_ALWAYS_EAGER": "false"}
    command = [
        sys.executable, "-m", "celery", "-A", "soc_console", "worker", "--pool=solo", "-l", "info",
        "-Q", ",".join(queues), "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    if name:
        command += ["-n", name]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen(  # noqa: S603 - our own worker, fixed arguments
            command, cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + timeout
    while "ready" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise WorkerDidNotStart(f"The Celery worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
