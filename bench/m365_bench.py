"""Microsoft 365 pull benchmark: telemetry pulled from a fake tenant over HTTPS (the local fake of the test
suite: real MSAL, real HTTP, TLS, JSON paging; only Microsoft is replaced), and a restart mid-pull.

Run by ``make bench`` (``BENCH=m365``) or alone: ``python bench/m365_bench.py``. It uses a PostgreSQL database
of its own, ``soc_console_bench_m365``, on ``DATABASE_URL``'s server, dropped afterwards. Detection is left
out (the ingest service's on-commit hand-off is switched off): the detection benchmark measures it.

1. A tenant of ``BENCH_M365_USERS`` (default 500) members, with 24 h of sent mail as message trace
   (``BENCH_M365_TRACES`` rows, default 50,000: 10,000 messages of 5 recipients, a row each sharing the
   message's trace id and time, as Microsoft's),
   ``BENCH_M365_SIGN_INS`` sign-ins (default 10,000) and 1,000 Exchange audit records, pages of 1,000
   (Graph's default).
2. A first full pull (directory, then each source): per source, the records read, events stored, seconds,
   and events/s; then the whole pull's events/s.
3. Restart mid-pull: a fresh tenant whose message-trace pull fails for good after 3 pages (as if the worker
   died), then a second pull; it prints where the second one started and that nothing was lost or stored
   twice.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # to run alone: python bench/<name>.py
from bench.common import bench_database  # also sets the Django settings defaults

BENCH_DB = "soc_console_bench_m365"
DOMAIN = "contoso.example"


def _tenant(fake_module, users: int, traces: int, sign_ins: int, audits: int, directory: str = "contoso"):
    fake = fake_module.FakeM365(page_size=1000, directory_id=f"{directory}-tenant-id")
    now = datetime.now(UTC)
    start = now - timedelta(hours=24)
    fake.domains = [fake_module.domain(DOMAIN)]
    upns = [f"user{n:04d}@{DOMAIN}" for n in range(users)]
    fake.users = [fake_module.user(upn, display_name=f"User {n}") for n, upn in enumerate(upns)]
    # As Microsoft's trace: a row per recipient, the rows of one message sharing its trace id and time.
    messages = max(traces // 5, 1)
    step = (now - timedelta(minutes=10) - start) / messages
    fake.message_traces = [
        row
        for m in range(messages)
        for row in fake_module.traces(
            upns[m % users],
            [f"r{r}@partner{(m * 5 + r) % 50}.example" for r in range(5)],
            start + step * m,
            subject=f"Quarterly numbers {m}",
            message_id=f"<m{m}@{DOMAIN}>",
        )
    ]
    step = (now - timedelta(minutes=10) - start) / max(sign_ins, 1)
    fake.sign_ins = [
        fake_module.sign_in(upns[n % users], start + step * n, ip=f"198.51.{n % 200}.{n % 250 + 1}")
        for n in range(sign_ins)
    ]
    step = (now - timedelta(minutes=10) - start) / max(audits, 1)
    fake.audit_records = [
        fake_module.audit(
            "Add-MailboxPermission",
            "admin@" + DOMAIN,
            start + step * n,
            object_id=upns[n % users],
            parameters={
                "Identity": upns[n % users],
                "User": upns[(n + 1) % users],
                "AccessRights": "FullAccess",
            },
        )
        for n in range(audits)
    ]
    return fake


def _serve_in_child(fake) -> tuple[str, str, multiprocessing.Process]:
    """Serve ``fake`` from a forked process, so its CPU (and the GIL) is not charged to the pull measured
    here, as Microsoft's is not; returns (base URL, CA bundle path, process)."""
    receive, send = multiprocessing.Pipe(duplex=False)

    def serve() -> None:
        fake.start()
        send.send((fake.base_url, fake.ca_bundle))
        signal.pause()

    process = multiprocessing.get_context("fork").Process(target=serve, daemon=True)
    process.start()
    base_url, ca_bundle = receive.recv()
    return base_url, ca_bundle, process


def _point_settings_at(base_url: str, ca_bundle: str) -> None:
    from django.conf import settings

    from m365.client import forget_apps

    settings.M365_AUTHORITY_HOST = base_url
    settings.M365_GRAPH_URL = f"{base_url}/graph"
    settings.M365_MANAGEMENT_URL = f"{base_url}/manage"
    settings.M365_CA_BUNDLE = ca_bundle
    settings.M365_SETTLE_SECONDS = 0
    forget_apps()


def _connect(fake, name: str):
    from m365.services import connect_tenant

    return connect_tenant(
        actor=None,
        name=name,
        directory_id=fake.directory_id,
        client_id=fake.client_id,
        credential_type="secret",
        secret=fake.client_secret,
    )


def main() -> None:
    users = int(os.environ.get("BENCH_M365_USERS", "500"))
    traces = int(os.environ.get("BENCH_M365_TRACES", "50000"))
    sign_ins = int(os.environ.get("BENCH_M365_SIGN_INS", "10000"))
    os.environ.pop("REQUESTS_CA_BUNDLE", None)
    os.environ.pop("CURL_CA_BUNDLE", None)
    with bench_database(BENCH_DB):
        _measure(users, traces, sign_ins)


def _measure(users: int, traces: int, sign_ins: int) -> None:
    from django.conf import settings

    import mailflow.ingest
    from m365.models import PullCursor, PullRun, Source
    from m365.pull import ORDER, pull_source
    from mailflow.models import MessageEvent
    from tests.m365 import fake_m365

    mailflow.ingest._after_commit = lambda tenant, result: None  # detection is the detection bench's

    fake = _tenant(fake_m365, users, traces, sign_ins, 1000)
    base_url, ca_bundle, process = _serve_in_child(fake)
    try:
        _point_settings_at(base_url, ca_bundle)
        connection = _connect(fake, "Contoso bench")
        print(
            f"tenant: {users} members, {traces} message-trace rows, {sign_ins} sign-ins, 1000 audit records"
        )
        print(f"{'source':<16}{'records':>9}{'events':>9}{'pages':>7}{'seconds':>9}{'events/s':>10}")
        total_events = total_seconds = 0.0
        for source in ORDER:
            started = time.perf_counter()
            run = pull_source(connection, source)
            seconds = time.perf_counter() - started
            if run.status == PullRun.Status.FAILED:
                raise SystemExit(f"{source} pull failed: {run.error}")
            total_events += run.accepted
            total_seconds += seconds
            rate = run.accepted / seconds if seconds else 0
            print(f"{source:<16}{run.records:>9}{run.accepted:>9}{run.pages:>7}{seconds:>9.2f}{rate:>10,.0f}")
        rate = total_events / total_seconds
        print(f"whole pull: {total_events:,.0f} events in {total_seconds:.1f} s = {rate:,.0f} events/s")
    finally:
        process.terminate()
        process.join()

    # Restart mid-pull.
    fake = _tenant(fake_m365, 50, 10_000, 0, 0, directory="fabrikam").start()
    try:
        _point_settings_at(fake.base_url, fake.ca_bundle)
        settings.M365_MAX_RETRIES = 0
        connection = _connect(fake, "Contoso restart")
        pull_source(connection, Source.DOMAINS)
        pull_source(connection, Source.USERS)
        fake.fail("/graph/v1.0/admin/exchange/tracing/messageTraces", status=500, times=10**6, after=3)
        first = pull_source(connection, Source.MESSAGE_TRACE)
        cursor = PullCursor.objects.get(connection=connection, source=Source.MESSAGE_TRACE)
        stored_before = MessageEvent.objects.filter(tenant=connection.tenant).count()
        fake.clear_failures()
        fake.requests.clear()
        second = pull_source(connection, Source.MESSAGE_TRACE)
        stored_after = MessageEvent.objects.filter(tenant=connection.tenant).count()
        resumed_at = next(r for r in fake.requests if r.path.endswith("/messageTraces"))
        expected = len({t["messageId"] for t in fake.message_traces})
        bookmark = "kept" if cursor.state.get("next") else "missing"
        where = "at the stored $skiptoken" if "$skiptoken" in resumed_at.query else "from the start"
        print(
            f"restart mid-pull: 1st pull {first.status} after {first.pages} pages ({first.accepted} events "
            f"stored, bookmark {bookmark}); 2nd pull {second.status}, resumed={second.resumed}, "
            "first request "
            f"{where}, {second.pages} pages, {second.accepted} new events, {second.duplicates} duplicates; "
            f"stored {stored_before} -> {stored_after} of {expected} messages"
        )
    finally:
        fake.stop()
