"""The self-hosted mail endpoints under load (``make bench BENCH=mailstack``): Rspamd's exporter posts and
Dovecot's policy requests (``allow`` and ``report``) against the real Django app served by gunicorn.

- **peak**: closed loop, 32 keep-alive connections, ``BENCH_MAILSTACK_REQUESTS`` requests per endpoint;
- **latency of Dovecot's answer**: open loop at ``BENCH_MAILSTACK_RATE`` ``allow`` requests/s for
  ``BENCH_MAILSTACK_SECONDS`` s (after a 2 s warm-up), p50 / p99 / max from send to answer; Dovecot gives
  up after 2 s (``auth_policy_server_timeout_msecs``);
- **storing**: the events the endpoints queued, stored by the ingest task's service (``drain_events``) in
  this process, events/s (the reference: the same events straight through ``ingest_events``).

gunicorn (2 workers × 4 threads, ``gthread`` for keep-alive) is pinned to CPU 0 and the load generator, a
separate asyncio process, to CPU 1. No Celery worker runs: the burst tasks wait in the broker, and the
storing step drains the queue itself. A fresh database ``soc_mailstack_bench``; the Redis of ``REDIS_URL``
(db flushed of the bench's keys before and after).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soc_console.settings")

from bench.common import ROOT, bench_database, percentile, wait_listening

BENCH_DB = "soc_mailstack_bench"
SECRET = "bench-secret"
USERS = 1000
DOMAIN = "corp.example"
TASKSET = shutil.which("taskset") or "/usr/bin/taskset"
CONNECTIONS = 32


def _auth() -> str:
    return "Basic " + base64.b64encode(f"bench:{SECRET}".encode()).decode()


def _bodies(kind: str, count: int) -> list[bytes]:
    bodies = []
    for i in range(count):
        user = f"user{i % USERS}@{DOMAIN}"
        if kind == "rspamd":
            body = {
                "action": "no action" if i % 10 else "reject",
                "qid": f"BENCH{i:012d}",
                "user": user,
                "from": user,
                "rcpt": [f"r{i % 7}@elsewhere.example", f"user{(i + 1) % USERS}@{DOMAIN}"],
                "subject": f"Report {i % 50}",
                "header_subject": [f"Report {i % 50}"],
                "message_id": f"bench{i}@{DOMAIN}",
                "ip": "203.0.113.7",
                "score": 1.5,
                "symbols": [{"name": "MIME_GOOD", "group": "mime_types", "score": -0.1}],
            }
        else:
            body = {
                "login": user,
                "protocol": "imap",
                "remote": f"81.2.{i % 200}.{i % 250 + 1}",
                "session_id": f"s{i}",
                "tls": True,
                "pwhash": "0ac5",
                "device_id": "",
            }
            if kind == "report":
                body.update(success=i % 20 != 0, policy_reject=False)
        bodies.append(json.dumps(body).encode())
    return bodies


def _request(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: {_auth()}\r\nContent-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def _closed(port: int, path: str, bodies: list[bytes]) -> dict:
    queue = list(reversed(bodies))
    statuses: dict[int, int] = {}

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while queue:
            writer.write(_request(path, queue.pop()))
            status = await _read_response(reader)
            statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONNECTIONS)))
    elapsed = time.perf_counter() - began
    return {
        "requests": len(bodies),
        "seconds": elapsed,
        "per_second": len(bodies) / elapsed,
        "statuses": statuses,
    }


async def _open(
    port: int, path: str, bodies: list[bytes], rate: float, seconds: float, warmup: float
) -> dict:
    idle: asyncio.Queue = asyncio.Queue()
    for _ in range(CONNECTIONS):
        idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    errors = 0
    total = int(rate * (seconds + warmup))
    start = time.perf_counter() + 0.1
    tasks = []

    async def one(index: int, due: float) -> None:
        nonlocal errors
        reader, writer = await idle.get()
        sent = time.perf_counter()
        writer.write(_request(path, bodies[index % len(bodies)]))
        status = await _read_response(reader)
        done = time.perf_counter()
        idle.put_nowait((reader, writer))
        if due - start >= warmup:
            latencies.append((done - sent) * 1000)
            if status != 200:
                errors += 1

    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, due)))
    await asyncio.gather(*tasks)
    return {
        "requests": len(latencies),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies),
        "errors": errors,
    }


def generate(argv: list[str]) -> None:
    """The load generator's entry point (run pinned to CPU 1); prints one JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int)
    parser.add_argument("--kind")
    parser.add_argument("--mode")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=2)
    args = parser.parse_args(argv)
    path = {
        "rspamd": "/hooks/mailstack/default/rspamd",
        "allow": "/hooks/mailstack/default/dovecot-policy?command=allow",
        "report": "/hooks/mailstack/default/dovecot-policy?command=report",
    }[args.kind]
    bodies = _bodies(args.kind, args.requests)
    if args.mode == "closed":
        result = asyncio.run(_closed(args.port, path, bodies))
    else:
        result = asyncio.run(_open(args.port, path, bodies, args.rate, args.seconds, args.warmup))
    result["generator_cpu"] = time.process_time()
    print(json.dumps(result))


def _generator(port: int, kind: str, mode: str, **options) -> dict:
    command = [TASKSET, "-c", "1", sys.executable, __file__, "--generate", "--port", str(port)]
    command += ["--kind", kind, "--mode", mode, *[f"--{k}={v}" for k, v in options.items()]]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)  # noqa: S603
    return json.loads(done.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    requests = int(os.environ.get("BENCH_MAILSTACK_REQUESTS", "20000"))
    rate = float(os.environ.get("BENCH_MAILSTACK_RATE", "200"))
    seconds = float(os.environ.get("BENCH_MAILSTACK_SECONDS", "20"))
    with bench_database(BENCH_DB) as url:
        from django.conf import settings

        from core.models import Tenant
        from mailboxes.models import AcceptedDomain
        from mailflow.ingest import ingest_events
        from mailstack import state
        from mailstack.endpoints import hash_secret
        from mailstack.models import MailstackConnection
        from mailstack.services import connect_mail_servers, drain_events

        tenant = Tenant.objects.default()
        AcceptedDomain.objects.get_or_create(tenant=tenant, domain=DOMAIN)
        connection, _ = connect_mail_servers(
            tenant, actor=None, doveadm_url="http://127.0.0.1:8080/doveadm/v1"
        )
        MailstackConnection.objects.filter(pk=connection.pk).update(
            exporter_secret_hash=hash_secret(SECRET), policy_secret_hash=hash_secret(SECRET)
        )
        client = state.client()

        def clear() -> None:
            keys = list(client.scan_iter(match="soc:mailstack:default:*", count=1000))
            if keys:
                client.delete(*keys)

        clear()
        port = _free_port()
        workdir = Path(tempfile.mkdtemp(prefix="soc-mailstack-bench-"))
        log = workdir / "gunicorn.log"
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": settings.REDIS_URL,
            "DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            "MAILSTACK_TARPIT_AFTER_FAILURES": "1000000",
        }
        gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
        with log.open("w") as out:
            server = subprocess.Popen(  # noqa: S603 - fixed command
                [TASKSET, "-c", "0", gunicorn, "soc_console.wsgi:application", "--bind", f"127.0.0.1:{port}",
                 "--workers", "2", "--threads", "4", "--worker-class", "gthread", "--keep-alive", "30",
                 "--log-level", "warning"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_listening(port, server, log, name="gunicorn")
            _generator(port, "allow", "closed", requests=500)  # warm both workers
            results = {}
            for kind in ("rspamd", "report", "allow"):
                results[kind] = _generator(port, kind, "closed", requests=requests)
                peak = results[kind]
                print(
                    f"peak {kind:7s}: {peak['per_second']:,.0f} requests/s ({peak['requests']:,} in "
                    f"{peak['seconds']:.1f} s; statuses {peak['statuses']}; "
                    f"generator CPU {peak['generator_cpu']:.1f} s)",
                    flush=True,
                )
            opened = _generator(port, "allow", "open", rate=rate, seconds=seconds, requests=5000)
            print(
                f"Dovecot policy answer at {rate:,.0f} allow/s: p50 {opened['p50']:.2f} ms, "
                f"p99 {opened['p99']:.2f} ms, max {opened['max']:.1f} ms, {opened['requests']:,} requests "
                f"({opened['errors']} errors); Dovecot's timeout: 2,000 ms",
                flush=True,
            )
        finally:
            server.terminate()
            server.wait(20)
            shutil.rmtree(workdir, ignore_errors=True)
        waiting = client.llen(state.events_key("default"))
        began = time.perf_counter()
        stored = 0
        while client.llen(state.events_key("default")):
            stored += drain_events(tenant.pk).accepted
        elapsed = time.perf_counter() - began
        print(
            f"storing: {stored:,} of {waiting:,} queued events in {elapsed:.1f} s = {stored / elapsed:,.0f}/s"
        )
        reference = [json.loads(b) for b in _bodies("rspamd", 5000)]
        from mailstack.mapping import rspamd_event

        events = [{**rspamd_event(b), "id": f"ref:{i}"} for i, b in enumerate(reference)]
        began = time.perf_counter()
        for start in range(0, len(events), 500):
            ingest_events(tenant, events[start : start + 500], mode="lenient", source="bench")
        elapsed = time.perf_counter() - began
        print(f"reference: the same message events through ingest_events: {len(events) / elapsed:,.0f}/s")
        clear()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--generate":
        generate(sys.argv[2:])
    else:
        main()
