"""The Postfix policy service against policyd-rate-limit (RECIPES.md, "Peer for the benchmark").

Both services get the same request stream: per message, one ``RCPT`` request then the request each counts at
(``END-OF-MESSAGE`` for ours, ``DATA`` for policyd-rate-limit's ``count_mode: 1``), from 1,000 SASL users,
with limits far above the load so nothing is refused. Two measurements per service, the service pinned to
CPU 0:

- **peak**: closed loop, 32 keep-alive connections, 200,000 requests (each connection sends its next request
  when the previous one is answered);
- **latency**: open loop at 2,000 requests/s for 20 s after a 2 s warm-up on the same connections (a request
  is sent at its scheduled time on an idle connection, one outstanding request per connection as Postfix
  does); p50 / p99 from send to answer, and from the scheduled time (which adds any wait for an idle
  connection or a late send).

The load generator is a separate process pinned to CPU 1 with ``taskset``; it reports its own CPU use so a
saturated generator is visible. Ours runs as ``manage.py run_policy_server`` (its event-forwarder child
included) with a fresh database; accepted messages are handed to the ingest task as in production (no worker
runs, so they wait in the broker). Its Redis is a private ``redis-server`` started for the run (no
persistence), pinned to CPU 1 beside the generator: in production Redis is a service of its own, shared by
the policy services (DESIGN section 11), and a shared development Redis would add other people's load to the
tail. ``BENCH_POLICY_REDIS=redis://…`` uses that Redis instead (its database is flushed before and after).

**Floor.** The same open loop against an asyncio server that answers ``DUNNO`` at once, pinned like the
services: the latency this machine, the generator and asyncio add before any policy logic. Read the p99 goal
against it; on a busy host it moves by milliseconds from one run to the next.

Environment: ``BENCH_POLICY_REQUESTS``, ``BENCH_POLICY_RATE``, ``BENCH_POLICY_SECONDS``,
``BENCH_POLICY_WARMUP``, ``BENCH_POLICY_REDIS``, ``BENCH_POLICY_PEER`` (the policyd-rate-limit venv,
``/tmp/policyd-venv``), ``BENCH_POLICY_SKIP_PEER``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soc_console.settings")

from bench.common import ROOT, bench_database, percentile, wait_listening

BENCH_DB = "soc_policy_bench"
USERS = 1000
DOMAIN = "corp.example"
SERVER_CPU = "0"
LOAD_CPU = "1"
TASKSET = shutil.which("taskset") or "/usr/bin/taskset"
HIGH_LIMIT = 10_000  # per user and window: far above what the run sends (≈100 messages per user)


# ------------------------------------------------------------------------------------------ load generator


def request_bytes(conn: int, seq: int, counting_state: str) -> bytes:
    """Request ``seq`` of connection ``conn``: even = RCPT, odd = the counting request of the same message."""
    message = seq // 2
    user = (conn * 7919 + message) % USERS
    state = "RCPT" if seq % 2 == 0 else counting_state
    return (
        "request=smtpd_access_policy\n"
        f"protocol_state={state}\n"
        "protocol_name=ESMTP\n"
        "client_address=192.0.2.10\n"
        "client_name=client.example\n"
        "helo_name=client.example\n"
        f"sender=user{user}@{DOMAIN}\n"
        f"recipient=dest{message % 97}@elsewhere.example\n"
        f"recipient_count={0 if seq % 2 == 0 else 1}\n"
        f"queue_id=Q{conn}X{message}\n"
        f"instance=i{conn}.{message}\n"
        "size=2048\n"
        f"sasl_method=plain\nsasl_username=user{user}@{DOMAIN}\n"
        "\n"
    ).encode()


class _Client(asyncio.Protocol):
    def __init__(self, generator: _Generator, index: int) -> None:
        self.generator = generator
        self.index = index
        self.seq = 0
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send_next(self) -> None:
        self.transport.write(request_bytes(self.index, self.seq, self.generator.counting_state))
        self.seq += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\n\n")) >= 0:
            answer, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
            self.generator.on_answer(self, answer)

    def connection_lost(self, exc) -> None:
        self.generator.lost += 1


class _Generator:
    """The closed loop: each connection sends its next request when the previous one is answered."""

    def __init__(self, counting_state: str) -> None:
        self.counting_state = counting_state
        self.answers: dict[str, int] = {}
        self.lost = 0
        self.remaining = 0
        self.total = 0
        self.done: asyncio.Future | None = None

    def on_answer(self, client: _Client, answer: bytes) -> None:
        key = answer.decode(errors="replace")
        self.answers[key] = self.answers.get(key, 0) + 1
        if self.remaining > 0:
            self.remaining -= 1
            client.send_next()
        if sum(self.answers.values()) >= self.total and not self.done.done():
            self.done.set_result(None)


async def _connect(generator: _Generator, host: str, port: int, connections: int) -> list[_Client]:
    loop = asyncio.get_running_loop()
    clients = []
    for index in range(connections):  # one at a time: policyd-rate-limit listens with a backlog of 5
        _, client = await loop.create_connection(lambda i=index: _Client(generator, i), host, port)
        clients.append(client)
    return clients


async def _closed_loop(host: str, port: int, connections: int, requests: int, counting_state: str) -> dict:
    generator = _Generator(counting_state)
    generator.done = asyncio.get_running_loop().create_future()
    generator.total = requests
    clients = await _connect(generator, host, port, connections)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    generator.remaining = requests - len(clients)
    for client in clients:
        client.send_next()
    await asyncio.wait_for(generator.done, 240)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    for client in clients:
        client.transport.close()
    return {
        "requests": requests,
        "seconds": wall,
        "per_second": requests / wall,
        "generator_cpu": cpu / wall,
        "answers": generator.answers,
        "lost": generator.lost,
    }


class _OpenConnection:
    """One keep-alive connection of the open-loop generator (one outstanding request at most, as Postfix)."""

    __slots__ = ("sock", "index", "seq", "buffer", "sent_at", "scheduled_at", "recorded")

    def __init__(self, sock: socket.socket, index: int) -> None:
        self.sock = sock
        self.index = index
        self.seq = 0
        self.buffer = b""
        self.sent_at = 0.0
        self.scheduled_at = 0.0
        self.recorded = False


def _open_loop(
    host: str, port: int, connections: int, rate: float, seconds: float, warmup: float, counting_state: str
) -> dict:
    """Requests at fixed times (``rate`` per second), each on an idle connection; latency from the send and
    from the scheduled time. The first ``warmup`` seconds are sent the same way but not recorded.

    A plain ``select`` loop, not asyncio: asyncio's timers have a resolution of one millisecond, so at 2,000/s
    an asyncio generator sends in bursts of two and reads answers late, and that, not the service, made the
    tail. ``select`` takes its timeout in microseconds: each request leaves at its time and each answer is
    timed when it arrives."""
    conns = []
    for index in range(connections):  # one at a time: policyd-rate-limit listens with a backlog of 5
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns.append(_OpenConnection(sock, index))
    by_fd = {conn.sock.fileno(): conn for conn in conns}
    fds = list(by_fd)
    idle = deque(conns)
    interval = 1.0 / rate
    warm = int(rate * warmup)
    total = warm + int(rate * seconds)
    latencies: list[float] = []
    scheduled_latencies: list[float] = []
    answers: dict[str, int] = {}
    sent = answered = lost = 0
    start = time.perf_counter() + 0.01
    deadline = start + total * interval + 120
    cpu0 = time.process_time()
    recorded_from = start + warm * interval
    while answered < total:
        now = time.perf_counter()
        while sent < total and idle and start + sent * interval <= now:
            conn = idle.popleft()
            conn.scheduled_at = start + sent * interval
            conn.recorded = sent >= warm
            data = request_bytes(conn.index, conn.seq, counting_state)
            conn.sent_at = time.perf_counter()
            conn.sock.sendall(data)
            conn.seq += 1
            sent += 1
        timeout = max(0.0, start + sent * interval - time.perf_counter()) if sent < total and idle else 0.1
        ready, _, _ = select.select(fds, [], [], timeout)
        now = time.perf_counter()
        for fd in ready:
            conn = by_fd[fd]
            data = conn.sock.recv(65536)
            if not data:
                lost += 1
                fds.remove(fd)
                continue
            conn.buffer += data
            while (end := conn.buffer.find(b"\n\n")) >= 0:
                answer, conn.buffer = conn.buffer[:end], conn.buffer[end + 2 :]
                key = answer.decode(errors="replace")
                answers[key] = answers.get(key, 0) + 1
                answered += 1
                if conn.recorded:
                    latencies.append(now - conn.sent_at)
                    scheduled_latencies.append(now - conn.scheduled_at)
                idle.append(conn)
        if now > deadline or not fds:
            raise SystemExit(f"open loop stalled: {answered} of {total} answered, {lost} connections lost")
    wall, cpu = time.perf_counter() - recorded_from, time.process_time() - cpu0
    for conn in conns:
        conn.sock.close()
    ms = [v * 1000 for v in latencies]
    sched = [v * 1000 for v in scheduled_latencies]
    return {
        "requests": len(ms),
        "warmup_requests": warm,
        "offered_per_second": rate,
        "achieved_per_second": len(ms) / wall,
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "p999_ms": percentile(ms, 99.9),
        "max_ms": max(ms),
        "from_schedule_p50_ms": percentile(sched, 50),
        "from_schedule_p99_ms": percentile(sched, 99),
        "generator_cpu": cpu / (wall + warm * interval),
        "answers": answers,
        "lost": lost,
    }


async def _serve_floor(port: int) -> None:
    """The floor's server: answers every request ``DUNNO`` at once."""

    class Answer(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while (end := self.buffer.find(b"\n\n")) >= 0:
                self.buffer = self.buffer[end + 2 :]
                self.transport.write(b"action=DUNNO\n\n")

    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", port)
    await server.serve_forever()


def generate(argv: list[str]) -> None:
    """The load generator process (``--generate``): prints one JSON line of results."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["closed", "open", "floor-server"], required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--counting-state", default="END-OF-MESSAGE")
    args = parser.parse_args(argv)
    if args.mode == "floor-server":
        asyncio.run(_serve_floor(args.port))
        return
    if args.mode == "closed":
        result = asyncio.run(
            _closed_loop("127.0.0.1", args.port, args.connections, args.requests, args.counting_state)
        )
    else:
        result = _open_loop(
            "127.0.0.1",
            args.port,
            args.connections,
            args.rate,
            args.seconds,
            args.warmup,
            args.counting_state,
        )
    print(json.dumps(result))


def run_generator(port: int, mode: str, counting_state: str, **options) -> dict:
    """Run the generator pinned to :data:`LOAD_CPU` and return its results."""
    command = [
        TASKSET,
        "-c",
        LOAD_CPU,
        sys.executable,
        str(Path(__file__).resolve()),
        "--generate",
        "--port",
        str(port),
        "--mode",
        mode,
        "--counting-state",
        counting_state,
    ]
    for name, value in options.items():
        command += [f"--{name}", str(value)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)  # noqa: S603
    if done.returncode != 0:
        raise SystemExit(f"the load generator failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ services


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_cpu(process: subprocess.Popen) -> float:
    """CPU seconds of a service and its children (our event forwarder)."""
    pids = [process.pid]
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    if children.exists():
        pids += [int(pid) for pid in children.read_text().split()]
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # a child that just exited
            total += cpu_seconds(pid)
    return total


def measure(
    name: str,
    port: int,
    process: subprocess.Popen,
    counting_state: str,
    requests: int,
    rate: float,
    seconds: float,
    warmup: float,
) -> dict:
    cpu0 = service_cpu(process)
    closed = run_generator(port, "closed", counting_state, connections=32, requests=requests)
    closed["service_cpu"] = (service_cpu(process) - cpu0) / closed["seconds"]
    cpu0 = service_cpu(process)
    opened = run_open_loop(port, counting_state, rate, seconds, warmup)
    opened["service_cpu"] = (service_cpu(process) - cpu0) / (seconds + warmup)
    print(
        f"{name}: peak {closed['per_second']:,.0f} req/s (service CPU {closed['service_cpu']:.0%}, "
        f"generator CPU {closed['generator_cpu']:.0%}); {describe_open_loop(opened)}; "
        f"answers {closed['answers']}",
        flush=True,
    )
    return {"closed": closed, "open": opened}


def run_open_loop(port: int, counting_state: str, rate: float, seconds: float, warmup: float) -> dict:
    return run_generator(
        port, "open", counting_state, connections=32, rate=rate, seconds=seconds, warmup=warmup
    )


def describe_open_loop(opened: dict) -> str:
    cpu = f", service CPU {opened['service_cpu']:.0%}" if "service_cpu" in opened else ""
    return (
        f"open loop {opened['offered_per_second']:,.0f}/s: p50 {opened['p50_ms']:.2f} ms, p99 "
        f"{opened['p99_ms']:.2f} ms, p99.9 {opened['p999_ms']:.2f} ms (from schedule p99 "
        f"{opened['from_schedule_p99_ms']:.2f} ms{cpu})"
    )


def run_floor(rate: float, seconds: float, warmup: float, workdir: Path) -> dict:
    """The open loop against :func:`_serve_floor`, pinned to :data:`SERVER_CPU`."""
    port = free_port()
    log = workdir / "floor.log"
    with log.open("w") as out:
        process = subprocess.Popen(  # noqa: S603 - our own script
            [TASKSET, "-c", SERVER_CPU, sys.executable, str(Path(__file__).resolve()), "--generate"]
            + ["--port", str(port), "--mode", "floor-server"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_listening(port, process, log)
        opened = run_open_loop(port, "END-OF-MESSAGE", rate, seconds, warmup)
        print(f"floor (a server answering DUNNO at once): {describe_open_loop(opened)}", flush=True)
        return opened
    finally:
        process.terminate()
        process.wait(30)


@contextmanager
def bench_redis(workdir: Path) -> Iterator[str]:
    """``BENCH_POLICY_REDIS`` (flushed before and after), else a private ``redis-server`` pinned to
    :data:`LOAD_CPU` for the block's duration."""
    import redis

    url = os.environ.get("BENCH_POLICY_REDIS", "")
    if url:
        redis.Redis.from_url(url).flushdb()
        try:
            yield url
        finally:
            redis.Redis.from_url(url).flushdb()
        return
    program = shutil.which("redis-server")
    if program is None:
        raise SystemExit("redis-server is needed (or set BENCH_POLICY_REDIS=redis://…)")
    port = free_port()
    options = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    log = workdir / "redis.log"
    with log.open("w") as out:
        process = subprocess.Popen(  # noqa: S603 - fixed arguments
            [TASKSET, "-c", LOAD_CPU, program, *options, "--dir", str(workdir)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_listening(port, process, log)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(30)


def run_ours(
    url: str, redis_url: str, requests: int, rate: float, seconds: float, warmup: float, workdir: Path
) -> dict:
    port, metrics_port = free_port(), free_port()
    log = workdir / "ours.log"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret"),
        "LOG_LEVEL": "WARNING",
    }
    with log.open("w") as out:
        process = subprocess.Popen(  # noqa: S603 - our own command
            [
                TASKSET,
                "-c",
                SERVER_CPU,
                sys.executable,
                "manage.py",
                "run_policy_server",
                "--listen",
                f"127.0.0.1:{port}",
                "--instance-name",
                "bench",
                "--metrics-listen",
                f"127.0.0.1:{metrics_port}",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_listening(port, process, log)
        result = measure("ours", port, process, "END-OF-MESSAGE", requests, rate, seconds, warmup)
        time.sleep(2)  # let the event forwarder hand over its last batch
        metrics = (
            urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        )
        sent = [
            line for line in metrics.splitlines() if line.startswith('soc_policy_events_total{state="sent"}')
        ]
        result["events_sent"] = int(sent[0].split()[-1]) if sent else 0
        return result
    finally:
        process.terminate()
        process.wait(30)


PEER_CONFIG = """debug: False
user: "nobody"
group: "nogroup"
pidfile: "{dir}/run/policyd.pid"
sqlite_config:
    database: "{dir}/db/db.sqlite3"
backend: 0
SOCKET: ["127.0.0.1", {port}]
limits:
    - [{limit}, 3600]
    - [{limit}, 86400]
limits_by_id: {{}}
sql_limits_by_id: ""
limit_by_sasl: True
limit_by_sender: True
limit_by_ip: False
limited_networks: []
success_action: "dunno"
fail_action: "550 5.1.8 Access denied, bad outbound sender"
db_error_action: "dunno"
report: False
delay_to_close: 300
count_mode: 1
"""


def run_peer(venv: Path, requests: int, rate: float, seconds: float, warmup: float, workdir: Path) -> dict:
    program = venv / "bin" / "policyd-rate-limit"
    if not program.exists():
        raise FileNotFoundError(
            f"{program} is missing (PYENV_VERSION=3.11.7 python3 -m venv {venv} && "
            f"{venv}/bin/pip install policyd-rate-limit)"
        )
    port = free_port()
    peer_dir = workdir / "peer"
    peer_dir.mkdir()
    peer_dir.chmod(0o777)
    config = peer_dir / "policyd-rate-limit.yaml"
    config.write_text(PEER_CONFIG.format(dir=peer_dir, port=port, limit=HIGH_LIMIT))
    log = workdir / "peer.log"
    with log.open("w") as out:
        process = subprocess.Popen(  # noqa: S603 - fixed arguments
            [TASKSET, "-c", SERVER_CPU, str(venv / "bin" / "python"), str(program), "-f", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_listening(port, process, log)
        return measure("policyd-rate-limit", port, process, "DATA", requests, rate, seconds, warmup)
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    requests = int(os.environ.get("BENCH_POLICY_REQUESTS", "200000"))
    rate = float(os.environ.get("BENCH_POLICY_RATE", "2000"))
    seconds = float(os.environ.get("BENCH_POLICY_SECONDS", "20"))
    warmup = float(os.environ.get("BENCH_POLICY_WARMUP", "2"))
    venv = Path(os.environ.get("BENCH_POLICY_PEER", "/tmp/policyd-venv"))  # noqa: S108 - RECIPES.md's path
    if not os.access(TASKSET, os.X_OK):
        raise SystemExit("taskset (util-linux) is needed to pin the service and the load generator")
    workdir = Path(tempfile.mkdtemp(prefix="policy-bench-"))
    workdir.chmod(0o755)
    with bench_database(BENCH_DB) as url:
        from django.contrib.auth import get_user_model

        from alerts.models import AlertPolicy
        from alerts.services import ensure_default_policies, update_policy
        from core.models import Tenant
        from mailboxes.models import AcceptedDomain

        tenant = Tenant.objects.default()
        AcceptedDomain.objects.create(tenant=tenant, domain=DOMAIN)
        admin = get_user_model().objects.create_user("bench-admin")
        policy = ensure_default_policies(tenant)[AlertPolicy.Kind.SENDING_LIMIT]
        update_policy(
            policy,
            actor=admin,
            thresholds=dict.fromkeys(("external_per_hour", "internal_per_hour", "total_per_day"), HIGH_LIMIT),
        )
        with bench_redis(workdir) as redis_url:
            ours = run_ours(url, redis_url, requests, rate, seconds, warmup, workdir)
    floor = run_floor(rate, seconds, warmup, workdir)
    try:
        if os.environ.get("BENCH_POLICY_SKIP_PEER"):
            raise FileNotFoundError("skipped (BENCH_POLICY_SKIP_PEER)")
        peer = run_peer(venv, requests, rate, seconds, warmup, workdir)
    except (FileNotFoundError, subprocess.CalledProcessError, SystemExit) as exc:
        peer = None
        print(f"policyd-rate-limit could not run: {exc}", flush=True)
    print(f"\nservice             peak req/s   p50 ms   p99 ms   (open loop at {rate:,.0f}/s)")
    for name, result in (("ours", ours), ("policyd-rate-limit", peer)):
        if result:
            print(
                f"{name:<20}{result['closed']['per_second']:>10,.0f}{result['open']['p50_ms']:>9.2f}"
                f"{result['open']['p99_ms']:>9.2f}"
            )
    print(f"{'floor':<20}{'':>10}{floor['p50_ms']:>9.2f}{floor['p99_ms']:>9.2f}   (answers DUNNO at once)")
    print(f"accepted messages ours handed to the ingest task: {ours['events_sent']:,} (no worker runs here)")
    if peer:
        ratio = ours["closed"]["per_second"] / peer["closed"]["per_second"]
        print(
            f"peak ratio ours / policyd-rate-limit: {ratio:.1f}x (goal ≥ 3x); "
            f"our p99 {ours['open']['p99_ms']:.2f} ms (goal ≤ 2 ms)"
        )
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--generate":
        generate(sys.argv[2:])
    else:
        main()
