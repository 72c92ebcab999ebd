"""What every benchmark shares: a throwaway PostgreSQL database of its own, and a real Celery worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/"


def bench_url(database: str) -> str:
    """``DATABASE_URL``'s server with the benchmark's own database name (never the configured database)."""
    parts = urlsplit(os.environ.get("DATABASE_URL") or DEFAULT_SERVER)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise SystemExit(f"The benchmarks need PostgreSQL; DATABASE_URL is {parts.scheme!r}.")
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", "", ""))


def recreate_database(url: str, *, drop_only: bool = False) -> None:
    """Drop (and unless ``drop_only`` create) ``url``'s database, through the server's ``postgres`` db."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    maintenance = urlunsplit(("postgresql", parts.netloc, "/postgres", "", ""))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@contextmanager
def bench_database(name: str):
    """A fresh, migrated PostgreSQL database ``name`` on ``DATABASE_URL``'s server for the block's duration.

    Django is set up (or, when another benchmark already did, re-pointed) on it; it is dropped afterwards.
    Yields its URL (for a worker process).
    """
    import django

    url = bench_url(name)
    recreate_database(url)
    os.environ["DATABASE_URL"] = url
    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit(f"The benchmarks need PostgreSQL, not {connection.vendor}.")
    original_name = connection.settings_dict["NAME"]
    connection.close()
    connection.settings_dict["NAME"] = name
    try:
        call_command("migrate", verbosity=0)
        yield url
    finally:
        connection.close()
        connection.settings_dict["NAME"] = original_name
        recreate_database(url, drop_only=True)


@contextmanager
def celery_worker(url: str, log: Path):
    """A real worker process on every queue, against ``url``'s database and the configured broker."""
    from django.conf import settings

    from soc_console.celery import app

    with app.connection_for_write() as conn:
        for queue in settings.TASK_QUEUES:
            conn.default_channel.queue_purge(queue)
    env = {**os.environ, "DATABASE_URL": url, "CELERY_TASK_ALWAYS_EAGER": "false"}
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen(  # noqa: S603 - our own worker, fixed arguments
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "soc_console",
                "worker",
                "--pool=solo",
                "-l",
                "info",
                "-Q",
                ",".join(settings.TASK_QUEUES),
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while "ready" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"the worker did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]
