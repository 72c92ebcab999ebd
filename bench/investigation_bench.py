"""Investigation benchmark: one compromised-user investigation of a user with 10,000 sent messages in 7 days.

Run by ``make bench`` (``bench/run.py`` calls :func:`main`) or alone: ``python bench/investigation_bench.py``.
It uses the PostgreSQL server of ``DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/``) but always
a database of its own, ``soc_console_bench_inv``, which it drops, creates and migrates first and drops again
at the end. Tasks run in-process (nothing is sent to a broker).

1. Seed through the ingest service, in bulk batches: 40 colleagues with a week of everyday mail and sign-ins,
and the user under investigation with ``BENCH_MESSAGES`` (default 10,000) sent messages over 7 days — everyday
mail (unique bodies, ~300 subjects, some links), a newsletter (one body, many copies), a spam run, a phishing
campaign to colleagues (one URL with per-recipient tokens) and a burst over the hourly sending limit — plus
inbox rules, external forwarding, a delegation and sign-ins from home and abroad. The detectors then run over
the batch as ``alerts.evaluate`` does, so the user has real alerts and a restriction.
2. Time ``run_investigation`` on a fresh investigation of the user, ``BENCH_RUNS`` (default 3) times; print
the median wall time and that run's per-analyzer breakdown (the ``AnalyzerRun`` log).
3. The reference, in the same run: one streamed read of the same columns of the user's mail (the scan every
mail analyzer shares, the floor of any investigation) and a raw SQL ``GROUP BY`` of it by body fingerprint.
"""

from __future__ import annotations

import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # to run alone: python bench/<name>.py
from bench.common import bench_database  # also sets the Django settings defaults

BENCH_DB = "soc_console_bench_inv"
DOMAIN = "bench.example"
USER = f"victim@{DOMAIN}"
COLLEAGUES = [f"user{n:02d}@{DOMAIN}" for n in range(40)]
PARTNERS = [f"partner{n}.example.net" for n in range(30)]
BATCH = 5_000


def generate(now, messages: int, seed: int = 11) -> list[dict[str, Any]]:
    """The seed events, mailbox events first, then the rest in time order (ids ``inv-<n>``)."""
    rng = random.Random(seed)
    start = now - timedelta(days=8)
    raw: list[tuple[Any, dict[str, Any]]] = []

    def message(sender, at, recipients, subject, verdict="clean", **fields):
        body = fields.pop("body_hash", f"{rng.getrandbits(96):024x}")  # everyday bodies are unique
        event = {"type": "message", "sender": sender, "recipients": recipients, "subject": subject}
        raw.append((at, {**event, "verdict": verdict, "body_hash": body, **fields}))

    def sign_in(user, at, ip, country, app="browser", result="success"):
        raw.append((at, {"type": "sign_in", "user": user, "ip": ip, "country": country, "client_app": app,
                         "result": result}))  # fmt: skip

    week = timedelta(days=7)
    # Colleagues: a week of everyday mail and morning sign-ins.
    for user in COLLEAGUES:
        for day in range(8):
            sign_in(
                user, start + timedelta(days=day, hours=8, minutes=rng.randrange(60)), "198.51.100.10", "NL"
            )
            for _ in range(rng.randint(5, 15)):
                at = start + timedelta(days=day, hours=rng.uniform(8, 18))
                message(user, at, [rng.choice(COLLEAGUES)], f"Project {rng.randrange(50)} notes")
    # The user: the attacks take the last day; everyday mail fills the rest of the 10,000.
    phish = 600
    spam = 800
    newsletter = 400
    burst = 60  # 60 × 10 external recipients in 30 minutes: over the 500-an-hour limit
    everyday = max(0, messages - phish - spam - newsletter - burst)
    for day in range(8):
        sign_in(USER, start + timedelta(days=day, hours=8), "198.51.100.20", "NL")
    for _ in range(everyday):
        at = now - week + timedelta(seconds=rng.uniform(0, week.total_seconds() - 86_400))
        recipients = rng.sample(COLLEAGUES, rng.randint(1, 3))
        if rng.random() < 0.35:
            recipients.append(f"contact{rng.randrange(300)}@{rng.choice(PARTNERS)}")
        fields = (
            {"urls": [f"https://docs.{rng.choice(PARTNERS)}/d/{rng.getrandbits(32):x}"]}
            if rng.random() < 0.1
            else {}
        )
        message(
            USER, at, recipients, f"{rng.choice(['', 'Re: ', 'FW: '])}Topic {rng.randrange(300)}", **fields
        )
    for n in range(newsletter):
        at = now - week + timedelta(days=n % 6, hours=10, seconds=n)
        message(
            USER, at, [f"sub{n}@{rng.choice(PARTNERS)}"], "Team newsletter", "bulk", body_hash="newsletter"
        )
    attack = now - timedelta(hours=20)
    sign_in(USER, attack - timedelta(minutes=30), "203.0.113.99", "NG", result="failure")
    sign_in(USER, attack - timedelta(minutes=29), "203.0.113.99", "NG", result="failure")
    sign_in(USER, attack - timedelta(minutes=25), "203.0.113.99", "NG")
    sign_in(USER, attack - timedelta(minutes=20), "203.0.113.99", "NG", app="imap")
    rule = {
        "type": "inbox_rule", "mailbox": USER, "rule_id": "evil-1", "operation": "created", "name": ".",
        "conditions": {"subject_contains": ["invoice", "payment"]},
        "actions": {"move_to_folder": "RSS Feeds", "mark_as_read": True},
    }  # fmt: skip
    raw.append((attack - timedelta(minutes=15), rule))
    raw.append((attack - timedelta(minutes=14), {"type": "forwarding", "mailbox": USER,
                "forward_to": "drop@mailbox-relay.example", "keep_copy": True}))  # fmt: skip
    raw.append((attack - timedelta(minutes=13), {"type": "delegation", "mailbox": USER,
                "delegate": COLLEAGUES[0], "access": "full_access", "operation": "added"}))  # fmt: skip
    for n in range(phish):
        lure = {"urls": [f"https://sharepoint-login.example/s?t={n}"], "body_hash": "lure"}
        message(
            USER, attack + timedelta(seconds=6 * n), rng.sample(COLLEAGUES, 3), "Q3 bonus", "phish", **lure
        )
    for n in range(spam):
        junk = {"urls": ["https://crypto-bonus.example/?r=1"], "body_hash": "spam"}
        at = attack + timedelta(hours=2, seconds=40 * n)
        message(USER, at, [f"x{n}@{rng.choice(PARTNERS)}"], "Crypto bonus", "spam", **junk)
    for n in range(burst):
        message(USER, attack + timedelta(hours=12, seconds=30 * n),
                [f"b{n}-{i}@{rng.choice(PARTNERS)}" for i in range(10)], f"Offer {n}")  # fmt: skip

    events: list[dict[str, Any]] = [
        {
            "type": "mailbox",
            "time": start.isoformat(),
            "address": address,
            "display_name": address.split("@")[0],
        }
        for address in (USER, *COLLEAGUES)
    ]
    raw.sort(key=lambda item: item[0])
    for at, event in raw:
        events.append({**event, "time": at.replace(microsecond=0).isoformat()})
    for n, event in enumerate(events):
        event["id"] = f"inv-{n}"
    return events


def main() -> None:
    runs = int(os.environ.get("BENCH_RUNS", "3"))
    messages = int(os.environ.get("BENCH_MESSAGES", "10000"))
    with bench_database(BENCH_DB):
        _measure(runs, messages)


def _measure(runs: int, messages: int) -> None:
    from celery import current_app
    from django.db import connection, transaction
    from django.utils import timezone

    eager = current_app.conf.task_always_eager
    current_app.conf.task_always_eager = True  # detection and its follow-ups run here, nothing is sent
    try:
        from alerts.services import evaluate_mailboxes
        from core.models import Tenant
        from investigations.models import Investigation
        from investigations.playbook import run_investigation
        from mailboxes.models import Mailbox
        from mailflow.ingest import ingest_events
        from mailflow.models import MessageEvent

        tenant = Tenant.objects.default()
        now = timezone.now()
        events = generate(now, messages)
        started = time.perf_counter()
        for i in range(0, len(events), BATCH):
            with transaction.atomic():
                result = ingest_events(tenant, events[i : i + BATCH], source="import")
                if not result.ok:
                    raise SystemExit(f"ingest refused the seed: {result.summary()} {result.errors[:3]}")
                evaluate_mailboxes(tenant.pk, result.affected_mailbox_ids, *result.time_range)
        seed_seconds = time.perf_counter() - started
        user = Mailbox.objects.get(tenant=tenant, address=USER)
        sent = MessageEvent.objects.filter(sender=user, time__gte=now - timedelta(days=7)).count()

        timings = []
        for _ in range(runs):
            investigation = Investigation.objects.create(tenant=tenant, mailbox=user)
            clock = time.perf_counter()
            run_investigation(investigation.pk)
            timings.append((time.perf_counter() - clock, investigation.pk))
        timings.sort()
        median_seconds, median_pk = timings[len(timings) // 2]
        investigation = Investigation.objects.get(pk=median_pk)

        clock = time.perf_counter()
        columns = list(
            MessageEvent.objects.filter(tenant=tenant, sender=user, time__gte=now - timedelta(days=8))
            .values_list("event_id", "time", "verdict", "recipient_count", "internal_count", "external_count",
                         "external_domains", "subject", "urls", "body_hash")
            .iterator(chunk_size=5000)
        )  # fmt: skip
        scan_seconds = time.perf_counter() - clock
        clock = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT body_hash, count(*), sum(internal_count), sum(external_count) "
                "FROM mailflow_messageevent WHERE tenant_id = %s AND sender_id = %s AND time >= %s "
                "GROUP BY body_hash",
                [tenant.pk, user.pk, now - timedelta(days=7)],
            )
            groups = len(cursor.fetchall())
        group_seconds = time.perf_counter() - clock

        print(f"seed: {len(events):,} events through the ingest service + detectors in {seed_seconds:.1f} s")
        print(f"user under investigation: {sent:,} sent messages in 7 days")
        print(
            f"one investigation (run_investigation, median of {runs}): {median_seconds * 1000:.0f} ms "
            f"[{', '.join(f'{t * 1000:.0f}' for t, _ in timings)} ms]"
        )
        print(
            f"  -> {investigation.get_status_display()}, verdict {investigation.verdict}, risk "
            f"{investigation.risk_score}; {investigation.findings.count()} findings, "
            f"{investigation.clusters.count()} cluster rows, {investigation.actions.count()} actions, "
            f"{investigation.alerts.count()} alerts"
        )
        for run in investigation.runs.order_by("id"):
            print(f"  {run.analyzer:<18} {run.duration_ms:>6} ms  {run.outcome:<6} {run.summary[:90]}")
        print(f"reference: one streamed read of the user's mail columns ({len(columns):,} rows): "
              f"{scan_seconds * 1000:.0f} ms")  # fmt: skip
        print(
            f"reference: raw SQL GROUP BY body fingerprint ({groups:,} groups): {group_seconds * 1000:.0f} ms"
        )
        print(f"ratio: the investigation is {median_seconds / scan_seconds:.1f}x the bare scan of the mail")
    finally:
        current_app.conf.task_always_eager = eager


if __name__ == "__main__":
    main()
