"""What every benchmark shares: a throwaway PostgreSQL database of its own, and a real Celery worker."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/"
# A benchmark run alone (``python bench/<name>.py``) gets the settings ``make bench`` would give it.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soc_console.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret")


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
    Yields its URL (for a worker process). ``BENCH_DB_SUFFIX`` is appended to the name, so two checkouts can
    run benchmarks on one server at once. While tuning: ``BENCH_KEEP=1`` leaves the database in place
    afterwards (to EXPLAIN its queries), and ``BENCH_REUSE=1`` takes such a kept database as it is (only
    migrated).
    """
    import django

    name = f"{name}{os.environ.get('BENCH_DB_SUFFIX', '')}"
    url = bench_url(name)
    keep, reuse = os.environ.get("BENCH_KEEP") == "1", os.environ.get("BENCH_REUSE") == "1"
    if not reuse:
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
        if not (keep or reuse):
            recreate_database(url, drop_only=True)


@contextmanager
def celery_worker(url: str, log: Path):
    """A real worker process on every queue, against ``url``'s database and the configured broker."""
    from soc_console.worker_process import WorkerDidNotStart, worker_process

    try:
        with worker_process(url, log) as process:
            yield process
    except WorkerDidNotStart as exc:
        raise SystemExit(str(exc)) from exc


def wait_listening(
    port: int, process: subprocess.Popen, log: Path, *, name: str = "the service", timeout: float = 60
) -> None:
    """Return once ``process`` (``name``, writing to ``log``) accepts connections on 127.0.0.1:``port``.

    Exits the benchmark with the log's tail when the process dies first or ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{name} did not listen on {port}:\n{log.read_text()[-3000:]}")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]
