"""Sustained-load benchmark (issue 17, part 5): the highest fixed ingest rate at which detection keeps up.

What runs, on a fresh database ``soc_console_bench_sustained`` (plus ``BENCH_DB_SUFFIX``) and the configured
broker, once per worker count (``BENCH_WORKERS``, default ``1,2``):

- a simulated tenant of ``BENCH_MAILBOXES`` users (default 20,000; its mailbox events are ingested first,
  no history). The roster is that large so that each user stays under the sending limits at every rate
  tried (1,000 events/s is ~150 messages an hour per user): a fixed small roster would push its users over the
  sending limits as the rate grows and turn the benchmark into an alert storm. Being new, the users are in
  their learning period: the detectors read their telemetry, only absolute limits could fire;
- a real HTTP server: gunicorn with ``BENCH_WEB_PROCESSES`` (3) sync processes serving the console
  (``bench/sustained_wsgi.py``, which stamps each answer with the server's clock after the batch committed);
- real Celery worker processes (``--pool=solo``, every queue), 1 then 2;
- a load generator in this process: every ``BENCH_BATCH_SECONDS`` (1) it POSTs one batch of the tenant's
  live mail and sign-ins to ``/api/v1/events/`` with an ingest token, sized for a fixed events/s, from
  ``BENCH_SENDERS`` (4) keep-alive connections so one slow answer does not hold the schedule back. Every
  ``BENCH_ATTACK_SECONDS`` (5) a new user is compromised, alternately an outbound phishing burst (51
  messages x 10 external recipients over three batches: over 500 external recipients in an hour, so a
  sending-limit alert, a restriction and an investigation) and external forwarding (a forwarding alert and
  an investigation).

**Detection lag** of an attack is its alert's ``created_at`` minus the commit stamp of the batch that carried
the event crossing the threshold. A step at one rate lasts ``BENCH_STEP_SECONDS`` (45); it passes when p95 lag
<= 2 s, every attack was alerted, the server ingested >= 95 % of the offered events and answered every batch.
The rate doubles from ``BENCH_START_RATE`` (100 events/s) until a step fails (halves if the first fails),
then ``BENCH_BISECT_STEPS`` (1) bisections narrow it; the best passing rate is then held for
``BENCH_SUSTAIN_SECONDS`` (300) to confirm it (once more at 80 % if it does not hold). Two workers start
their ramp from the rate one worker held. It prints each step, the worker backlog (tasks queued) over the
sustained run, the CPU each role used (web processes, workers, this database's PostgreSQL backends) and the
database's growth, then both rates and their ratio. Everything (server, workers, database) is torn down on
exit, Ctrl-C or failure. A step that leaves a backlog the grace period does not drain has its queues
purged, so the next step starts from idle workers.
"""

from __future__ import annotations

import bisect
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soc_console.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret")

from bench.common import ROOT, bench_database, percentile

DATABASE = "soc_console_bench_sustained"
LAG_GOAL_SECONDS = 2.0
INGEST_SHARE_GOAL = 0.95
PHISH_MESSAGES, PHISH_RECIPIENTS, PHISH_BATCHES = 51, 10, 3
SIGN_IN_SHARE = 0.15
LOG_DIR = ROOT / "var" / "bench-sustained"

Event = dict[str, Any]


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


@dataclass(frozen=True)
class Plan:
    """The benchmark's knobs, from the environment."""

    step_seconds: float = 45.0
    sustain_seconds: float = 300.0
    start_rate: float = 100.0
    max_rate: float = 20_000.0
    bisect_steps: int = 1
    batch_seconds: float = 1.0
    attack_seconds: float = 5.0
    mailboxes: int = 20_000
    web_processes: int = 3
    senders: int = 4
    workers: tuple[int, ...] = (1, 2)
    grace_seconds: float = 30.0

    @classmethod
    def from_env(cls) -> Plan:
        workers = tuple(int(n) for n in os.environ.get("BENCH_WORKERS", "1,2").split(",") if n.strip())
        return cls(
            step_seconds=_env_float("BENCH_STEP_SECONDS", cls.step_seconds),
            sustain_seconds=_env_float("BENCH_SUSTAIN_SECONDS", cls.sustain_seconds),
            start_rate=_env_float("BENCH_START_RATE", cls.start_rate),
            max_rate=_env_float("BENCH_MAX_RATE", cls.max_rate),
            bisect_steps=int(_env_float("BENCH_BISECT_STEPS", cls.bisect_steps)),
            batch_seconds=_env_float("BENCH_BATCH_SECONDS", cls.batch_seconds),
            attack_seconds=_env_float("BENCH_ATTACK_SECONDS", cls.attack_seconds),
            mailboxes=int(_env_float("BENCH_MAILBOXES", cls.mailboxes)),
            web_processes=int(_env_float("BENCH_WEB_PROCESSES", cls.web_processes)),
            senders=int(_env_float("BENCH_SENDERS", cls.senders)),
            workers=workers or cls.workers,
            grace_seconds=_env_float("BENCH_GRACE_SECONDS", cls.grace_seconds),
        )


# ------------------------------------------------------------------------------------------------ processes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def web_server(database_url: str, log: Path, *, processes: int, timeout: float = 60) -> Iterator[str]:
    """gunicorn with ``processes`` sync workers serving the console on a free local port, against
    ``database_url`` and the configured broker; yields its base URL and stops it (SIGTERM) afterwards."""
    import requests

    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "*",
        "SECURE_SSL_REDIRECT": "false",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only-secret",
    }
    command = [
        sys.executable, "-m", "gunicorn", "bench.sustained_wsgi:application", "--bind", f"127.0.0.1:{port}",
        "--workers", str(processes), "--timeout", "120", "--graceful-timeout", "5", "--log-level", "warning",
    ]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen(  # noqa: S603 - our own server, fixed arguments
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{log.read_text()[-3000:]}")
            try:
                requests.get(f"{base}/healthz", timeout=10)  # any answer: up (beat is not run here)
                break
            except requests.RequestException:
                time.sleep(0.2)
        yield base
    finally:
        _stop(process)


@contextmanager
def worker_pool(database_url: str, count: int, log_dir: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` real Celery worker processes on every queue (the queues purged first); stopped on exit."""
    from soc_console.worker_process import worker_process

    with ExitStack() as stack:
        yield [
            stack.enter_context(worker_process(database_url, log_dir / f"worker-{n}.log", name=f"b{n}@%h"))
            for n in range(1, count + 1)
        ]


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds each of the processes ``pids`` has used so far (those still alive)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15 of stat(5))
    return used


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two samples; a process that appeared in between counts from zero."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


# -------------------------------------------------------------------------------------------------- traffic


@dataclass
class Attack:
    """A user compromised during the run, the policy whose alert it must raise, and the batch that carried the
    event crossing that policy's threshold (its commit starts the lag clock)."""

    address: str
    policy_kind: str
    trigger_batch: int = -1


@dataclass
class Sent:
    """One POSTed batch: when it was due and sent, the server's commit stamp, and the answer."""

    index: int
    events: int
    due: float
    sent_at: float = 0.0
    committed_at: float = math.nan
    status: int = 0
    accepted: int = 0
    error: str = ""


class TenantTraffic:
    """The live traffic of a simulated tenant at a fixed rate, with attacks started every few seconds.

    Benign events are the tenant's everyday mail and home sign-ins (the simulator's builders for its roster,
    senders weighted by their habits); ids are fresh for each run.
    """

    def __init__(self, simulation: Any, *, attack_seconds: float, session: int) -> None:
        self.feed = simulation.live_feed(session=session)
        self.domain = simulation.config.domain
        self.attack_seconds = attack_seconds
        self.prefix = f"sust-{session}-"
        self.count = 0
        self.attacks: list[Attack] = []
        self.pending: list[tuple[Attack, list[list[Event]]]] = []  # attacks with batches still to send
        self.next_attack_at = 0.0

    def _id(self) -> str:
        self.count += 1
        return f"{self.prefix}{self.count}"

    def _benign(self, now: float) -> Event:
        tenant, rng = self.feed.tenant, self.feed.rng
        mailbox = tenant.users[bisect.bisect(self.feed.sender_cum, rng.random() * self.feed.sender_cum[-1])]
        if rng.random() < SIGN_IN_SHARE:
            return tenant.home_sign_in(mailbox, int(now))
        return tenant.baseline_message(mailbox, int(now))

    def _start_attack(self) -> None:
        n = len(self.attacks) + 1
        address = f"compromised{n}.{self.prefix.rstrip('-')}@{self.domain}"
        if n % 2:
            attack = Attack(address, "sending_limit")
            messages = [
                {
                    "type": "message",
                    "sender": address,
                    "recipients": [f"t{n}-{m}-{r}@fabrikam.example" for r in range(PHISH_RECIPIENTS)],
                    "subject": "Action required: verify your mailbox",
                    "verdict": "phish",
                }
                for m in range(PHISH_MESSAGES)
            ]
            per_batch = math.ceil(PHISH_MESSAGES / PHISH_BATCHES)
            parts = [messages[i : i + per_batch] for i in range(0, PHISH_MESSAGES, per_batch)]
        else:
            attack = Attack(address, "forwarding")
            forwarding: Event = {"type": "forwarding", "mailbox": address, "keep_copy": True}
            parts = [[forwarding | {"forward_to": f"drop{n}@protonmail-secure.example"}]]
        self.attacks.append(attack)
        self.pending.append((attack, parts))

    def batch(self, index: int, size: int, now: float) -> list[Event]:
        """``size`` events timed ``now``: the next part of every attack under way, then benign events."""
        if now >= self.next_attack_at:
            self._start_attack()
            self.next_attack_at = now + self.attack_seconds
        events: list[Event] = []
        still: list[tuple[Attack, list[list[Event]]]] = []
        for attack, parts in self.pending:
            events.extend(parts.pop(0))
            if parts:
                still.append((attack, parts))
            else:
                attack.trigger_batch = index  # the last part crosses the threshold
        self.pending = still
        while len(events) < size:
            events.append(self._benign(now))
        stamp = datetime.fromtimestamp(now, UTC).isoformat()
        for event in events:
            event["id"], event["time"] = self._id(), stamp
        return events


class BacklogMonitor:
    """Samples the tasks queued on every queue once a second, in a thread, while it runs."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BacklogMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), queued_tasks()))
            self._stop.wait(1.0)


def queued_tasks() -> int:
    """Tasks waiting in the broker across every queue (not the one each worker holds)."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        return sum(int(client.llen(queue)) for queue in settings.TASK_QUEUES)
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------------- steps


@dataclass
class StepResult:
    """What one run at a fixed rate measured."""

    rate: float
    seconds: float
    offered: int = 0
    accepted: int = 0
    elapsed: float = 0.0
    failed_batches: int = 0
    lags: list[float] = field(default_factory=list)
    attacks: int = 0
    missing: int = 0
    other_alerts: int = 0
    backlog: list[tuple[float, int]] = field(default_factory=list)
    drained: bool = True

    @property
    def ingested_rate(self) -> float:
        return self.accepted / self.elapsed if self.elapsed else 0.0

    @property
    def p95(self) -> float:
        return percentile(self.lags, 95) if self.lags else math.inf

    @property
    def passed(self) -> bool:
        return (
            self.attacks > 0
            and not self.missing
            and not self.failed_batches
            and self.p95 <= LAG_GOAL_SECONDS
            and self.accepted >= INGEST_SHARE_GOAL * self.offered
        )

    def line(self) -> str:
        lags = (
            f"lag p50 {percentile(self.lags, 50):.2f} s, p95 {self.p95:.2f} s, max {max(self.lags):.2f} s"
            if self.lags
            else "no lag measured"
        )
        backlog = [n for _, n in self.backlog] or [0]
        return (
            f"{self.rate:7,.0f} events/s x {self.seconds:.0f} s: ingested {self.ingested_rate:7,.0f}/s "
            f"({self.accepted:,} of {self.offered:,}, {self.failed_batches} failed batches), "
            f"alerts {self.attacks - self.missing}/{self.attacks} (+{self.other_alerts} benign), {lags}, "
            f"backlog max {max(backlog)} mean {sum(backlog) / len(backlog):.1f}"
            f"{'' if self.drained else ' (not drained)'} "
            f"-> {'PASS' if self.passed else 'fail'}  [load {os.getloadavg()[0]:.1f}]"
        )


class LoadGenerator:
    """POSTs a tenant's traffic to the ingest API at a fixed rate and measures detection lag."""

    def __init__(self, base_url: str, token: str, traffic: TenantTraffic, tenant_id: int, plan: Plan) -> None:
        self.url = f"{base_url}/api/v1/events/"
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.traffic = traffic
        self.tenant_id = tenant_id
        self.plan = plan
        self.batches = 0
        self._local = threading.local()

    def _post(self, sent: Sent, body: bytes) -> Sent:
        import requests

        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        sent.sent_at = time.time()
        try:
            response = session.post(self.url, data=body, headers=self.headers, timeout=60)
        except requests.RequestException as exc:
            sent.error = str(exc)
            return sent
        sent.status = response.status_code
        if response.status_code in (200, 201):
            sent.accepted = int(response.json()["accepted"])
            sent.committed_at = float(response.headers.get("X-Bench-Committed", "nan"))
        else:
            sent.error = response.text[:300]
        return sent

    def run_step(self, rate: float, seconds: float) -> StepResult:
        """Offer ``rate`` events/s for ``seconds``, then wait (up to the grace period) for the alerts."""
        import msgspec

        step = StepResult(rate=rate, seconds=seconds)
        interval = self.plan.batch_seconds
        first_attack = len(self.traffic.attacks)
        futures: list[Future[Sent]] = []
        owed = 0.0
        with ThreadPoolExecutor(max_workers=self.plan.senders) as pool, BacklogMonitor() as monitor:
            started = time.monotonic()
            wall = time.time() - started
            for k in range(max(1, round(seconds / interval))):
                due = started + k * interval
                time.sleep(max(0.0, due - time.monotonic()))
                owed += rate * interval
                size = int(owed)
                owed -= size
                index = self.batches
                self.batches += 1
                events = self.traffic.batch(index, size, wall + due)
                sent = Sent(index=index, events=len(events), due=due)
                futures.append(pool.submit(self._post, sent, msgspec.json.encode(events)))
            results = [future.result() for future in futures]
            step.elapsed = max(time.monotonic() - started, seconds)
            attacks = self.traffic.attacks[first_attack:]
            self._collect_lags(step, attacks, results, since=wall + started)
            step.drained = _wait_until_drained(self.plan.grace_seconds)
            step.backlog = monitor.samples
        if not step.drained:
            _purge_queues()
        return step

    def _collect_lags(
        self, step: StepResult, attacks: list[Attack], results: list[Sent], since: float
    ) -> None:
        from alerts.models import Alert

        by_index = {sent.index: sent for sent in results}
        step.offered = sum(sent.events for sent in results)
        step.accepted = sum(sent.accepted for sent in results)
        step.failed_batches = sum(1 for sent in results if sent.status not in (200, 201))
        # Attacks whose last part falls in the next step are measured there (their trigger is not sent yet).
        measured = [a for a in attacks if a.trigger_batch in by_index]
        step.attacks = len(measured)
        deadline = time.monotonic() + self.plan.grace_seconds
        found: dict[tuple[str, str], datetime] = {}
        while True:
            rows = Alert.objects.filter(
                tenant_id=self.tenant_id, mailbox__address__in=[a.address for a in measured]
            ).values_list("mailbox__address", "policy__kind", "created_at")
            for address, kind, created in rows:
                key = (address, kind)
                found[key] = min(created, found.get(key, created))
            missing = [a for a in measured if (a.address, a.policy_kind) not in found]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        step.missing = len(missing)
        step.other_alerts = (
            Alert.objects.filter(tenant_id=self.tenant_id, created_at__gte=datetime.fromtimestamp(since, UTC))
            .exclude(mailbox__address__in=[a.address for a in self.traffic.attacks])
            .count()
        )
        for attack in measured:
            alerted = found.get((attack.address, attack.policy_kind))
            committed = by_index[attack.trigger_batch].committed_at
            if alerted is not None and not math.isnan(committed):
                step.lags.append(alerted.timestamp() - committed)


def _purge_queues() -> None:
    """Drop every queued task until the queues stay empty for two seconds (the workers finish what they
    hold, which may enqueue more)."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        quiet = 0
        while quiet < 4:
            purged = sum(int(client.delete(queue)) for queue in settings.TASK_QUEUES)  # kombu: a list a queue
            quiet = 0 if purged else quiet + 1
            time.sleep(0.5)
    finally:
        client.close()


def _wait_until_drained(timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while queued_tasks():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


# --------------------------------------------------------------------------------------------------- search


def find_rate(load: LoadGenerator, plan: Plan, start: float, *, factor: float = 2.0) -> float | None:
    """The highest rate (events/s) whose step passes: ramp by ``factor`` from ``start`` until a step fails
    (down by halves if the first fails), then bisect. None when even the lowest rate tried fails."""
    passed: float | None = None
    failed: float | None = None
    rate = start
    while rate <= plan.max_rate:
        result = load.run_step(rate, plan.step_seconds)
        print(f"  ramp   {result.line()}", flush=True)
        if result.passed:
            passed = rate
            if failed is not None:
                break
            rate *= factor
        else:
            failed = rate
            if passed is not None:
                break
            if rate / 2 < 5:
                return None
            rate /= 2
    if passed is None:
        return None
    if failed is None:
        return passed  # the ceiling BENCH_MAX_RATE passed
    low, high = passed, failed
    for _ in range(plan.bisect_steps):
        mid = round((low + high) / 2)
        result = load.run_step(mid, plan.step_seconds)
        print(f"  bisect {result.line()}", flush=True)
        low, high = (mid, high) if result.passed else (low, mid)
    return low


def sustain(load: LoadGenerator, plan: Plan, rate: float, roles: dict[str, list[int]]) -> StepResult:
    """Hold ``rate`` for ``BENCH_SUSTAIN_SECONDS`` and print the backlog over time and the CPU per role."""
    before = {role: cpu_by_pid(pids) for role, pids in {**roles, "postgres": _backend_pids()}.items()}
    size_before = _database_bytes()
    result = load.run_step(rate, plan.sustain_seconds)
    after = {role: cpu_by_pid(pids) for role, pids in {**roles, "postgres": _backend_pids()}.items()}
    used = {role: cpu_used(before[role], after[role]) for role in after}
    grown = _database_bytes() - size_before
    print(f"  hold   {result.line()}", flush=True)
    if result.backlog:
        t0 = result.backlog[0][0]
        every = [f"{t - t0:4.0f}s:{n}" for t, n in result.backlog[:: max(1, len(result.backlog) // 20)]]
        print(f"    backlog over time (tasks queued): {' '.join(every)}")
    if result.accepted:
        per_role = ", ".join(
            f"{role} ({len(after[role])} processes) {seconds:.1f} CPU-s "
            f"({result.accepted / seconds:,.0f} events per CPU-s)"
            for role, seconds in used.items()
            if seconds > 0
        )
        print(f"    CPU used while holding: {per_role}")
        print(
            "    (postgres: the backends alive at both samples or opened since; those closed in between, "
            "after DB_CONN_MAX_AGE, are lost: a lower bound)"
        )
        print(
            f"    database grew {grown / 2**20:,.0f} MiB for {result.accepted:,} events: "
            f"{grown / result.accepted * 1e6 / 2**30:.2f} GiB per million events (everything it wrote)"
        )
    return result


def _database_bytes() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        return int(cursor.fetchone()[0])


def _backend_pids() -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [int(row[0]) for row in cursor.fetchall()]


# ----------------------------------------------------------------------------------------------------- main


def simulated_roster(plan: Plan) -> Any:
    """The simulated tenant whose roster the traffic is drawn from (only its mailbox events are ingested)."""
    from mailflow.simulator import SimulationConfig, default_end, simulate

    started = time.perf_counter()
    simulation = simulate(
        SimulationConfig(end=default_end(datetime.now(UTC)), mailboxes=plan.mailboxes, days=1, compromised=0)
    )
    print(f"  roster: {plan.mailboxes:,} simulated users ({time.perf_counter() - started:.0f} s)", flush=True)
    return simulation


def prepare_tenant(simulation: Any) -> tuple[Any, str]:
    """The default tenant with the simulation's mailboxes (no history), and an ingest token for it. Their
    ``alerts.evaluate`` tasks are purged when the workers start."""
    from django.contrib.auth import get_user_model

    from core.models import Tenant
    from core.services import create_api_token
    from mailflow.ingest import ingest_events

    tenant = Tenant.objects.default()
    mailboxes = [event for event in simulation.events if event["type"] == "mailbox"]
    for start in range(0, len(mailboxes), 5000):
        result = ingest_events(tenant, mailboxes[start : start + 5000], source="simulator")
        assert result.ok, result.errors[:3]
    admin = get_user_model().objects.create_user(username="bench-admin", password=None)
    _, raw = create_api_token(tenant, actor=admin, name="sustained bench", scope="ingest")
    return tenant, raw


@contextmanager
def load_rig(
    database_url: str, plan: Plan, simulation: Any, workers: int
) -> Iterator[tuple[LoadGenerator, dict[str, list[int]]]]:
    """The tenant prepared, the web server and ``workers`` worker processes running; yields the load
    generator and the pids of each role (for CPU accounting)."""
    tenant, token = prepare_tenant(simulation)
    log_dir = LOG_DIR / f"{workers}w"
    with (
        web_server(database_url, log_dir / "web.log", processes=plan.web_processes) as base_url,
        worker_pool(database_url, workers, log_dir) as processes,
    ):
        traffic = TenantTraffic(simulation, attack_seconds=plan.attack_seconds, session=int(time.time()))
        load = LoadGenerator(base_url, token, traffic, tenant.pk, plan)
        load.run_step(plan.start_rate / 2, min(10.0, plan.step_seconds))  # warm up: connections, caches
        roles = {"web": _web_pids(), "workers": [p.pid for p in processes]}
        yield load, roles


def _web_pids() -> list[int]:
    """The gunicorn processes of this run (its master's children)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"bench.sustained_wsgi:application" in cmdline and os.getpid() in _ancestors(int(entry.name)):
                pids.append(int(entry.name))
    return pids


def _ancestors(pid: int) -> set[int]:
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            break
    return seen


def run(plan: Plan) -> dict[int, float | None]:
    """For each worker count, find and hold the highest rate; returns the held rate per worker count."""
    held: dict[int, float | None] = {}
    start = plan.start_rate
    simulation = simulated_roster(plan)
    for workers in plan.workers:
        print(f"\n{workers} worker process(es), {plan.web_processes} web processes:", flush=True)
        with bench_database(DATABASE) as url, load_rig(url, plan, simulation, workers) as (load, roles):
            best = find_rate(load, plan, start, factor=2.0 if workers == plan.workers[0] else 1.5)
            rate = None
            for candidate in [best, round(best * 0.8)] if best else []:
                if sustain(load, plan, candidate, roles).passed:
                    rate = candidate
                    break
            held[workers] = rate
            print(
                f"  -> {workers} worker(s): {f'{rate:,.0f} events/s held' if rate else 'no rate held'} "
                f"for {plan.sustain_seconds:.0f} s at p95 lag <= {LAG_GOAL_SECONDS:g} s",
                flush=True,
            )
        start = rate or start
    return held


def main() -> None:
    plan = Plan.from_env()
    print(
        f"sustained load: steps of {plan.step_seconds:.0f} s, hold {plan.sustain_seconds:.0f} s, "
        f"batches every {plan.batch_seconds:g} s, an attack every {plan.attack_seconds:g} s, "
        f"workers {plan.workers}; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    started = time.monotonic()
    held = run(plan)
    goal = f"p95 detection lag <= {LAG_GOAL_SECONDS:g} s, held {plan.sustain_seconds:.0f} s"
    print(f"\nsustained rate at {goal}:")
    for workers, rate in held.items():
        print(f"  {workers} worker(s): {f'{rate:,.0f} events/s' if rate else 'none'}")
    rates = list(held.values())
    if len(rates) >= 2 and rates[0] and rates[-1]:
        print(f"  {plan.workers[-1]} workers / {plan.workers[0]}: {rates[-1] / rates[0]:.2f}x")
    print(f"  ({(time.monotonic() - started) / 60:.1f} min, load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
