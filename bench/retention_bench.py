"""Retention purge benchmark: how fast beat's purge clears a large backlog of expired telemetry.

Seeds, with PostgreSQL ``COPY``, ``BENCH_RETENTION_MESSAGES`` (400,000) message events from 1,000
mailboxes spread evenly over 60 days, each with its ingest-ledger row (so about half is past the 30-day
window), 200 alerts holding 10 old messages each as evidence, and 20 open investigations (their mailboxes'
telemetry is kept). Then times :func:`core.retention.purge_expired` twice on that same data set:

1. on time-partitioned tables (issue 17: whole partitions dropped after their guarded rows are moved to the
   default partition; the default partition's expired rows by the batched DELETE);
2. on plain tables, the old purge (5,000-row transactions, guards applied), when ``BENCH_RETENTION_OLD`` is
   not ``0``;

and, as the reference in the same run, one plain ``DELETE … WHERE time < cutoff`` of the same message rows
from a copy of the table with its indexes. Prints rows purged per table, rows/s, and checks the kept rows.

Uses its own database ``soc_console_bench_retention`` on ``DATABASE_URL``'s server (dropped afterwards).
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soc_console.settings")

from bench.common import bench_database
from bench.console_bench import copy_rows

DATABASE = "soc_console_bench_retention"
DOMAIN = "bench.example"
MAILBOXES = 1000
DAYS = 60
ALERTS = 200
EVIDENCE_PER_ALERT = 10
INVESTIGATIONS = 20


def seed(rng: random.Random, now: datetime, messages: int) -> dict:
    from alerts.models import Alert, AlertEvidence, AlertPolicy
    from alerts.services import ensure_default_policies
    from core.models import Tenant
    from investigations.models import Investigation
    from mailboxes.models import AcceptedDomain, Mailbox
    from mailflow.models import IngestedEvent, MessageEvent

    tenant = Tenant.objects.default()
    AcceptedDomain.objects.create(tenant=tenant, domain=DOMAIN)
    mailboxes = Mailbox.objects.bulk_create(
        Mailbox(tenant=tenant, address=f"user{n}@{DOMAIN}") for n in range(MAILBOXES)
    )
    ids = [m.pk for m in mailboxes]
    span = DAYS * 86400
    rows = [
        (f"msg-{n}", now - timedelta(seconds=rng.randrange(span)), rng.choice(ids)) for n in range(messages)
    ]
    copy_rows(
        MessageEvent,
        ("tenant_id", "event_id", "time", "sender_id", "recipients", "recipient_count", "external_count"),
        ((tenant.pk, event_id, at, sender, '["x@partner.example"]', 1, 1) for event_id, at, sender in rows),
    )
    copy_rows(
        IngestedEvent,
        ("tenant_id", "event_id", "type", "content_hash", "time", "received_at"),
        (
            (tenant.pk, event_id, "message", hashlib.sha256(event_id.encode()).hexdigest(), at, at)
            for event_id, at, _ in rows
        ),
    )
    cutoff = now - timedelta(days=30)
    old = [row for row in rows if row[1] < cutoff]
    policy = ensure_default_policies(tenant)[AlertPolicy.Kind.SENDING_PATTERN]
    evidence_ids: set[str] = set()
    for _ in range(ALERTS):
        picked = rng.sample(old, EVIDENCE_PER_ALERT)
        alert = Alert.objects.create(
            tenant=tenant,
            policy=policy,
            mailbox_id=picked[0][2],
            title=policy.name,
            severity=policy.severity,
            category=policy.category,
            first_activity_at=min(at for _, at, _ in picked),
            last_activity_at=max(at for _, at, _ in picked),
            evidence_count=EVIDENCE_PER_ALERT,
        )
        AlertEvidence.objects.bulk_create(
            AlertEvidence(alert=alert, kind="message", event_id=event_id, at=at) for event_id, at, _ in picked
        )
        evidence_ids.update(event_id for event_id, _, _ in picked)
    investigated = rng.sample(ids, INVESTIGATIONS)
    Investigation.objects.bulk_create(
        Investigation(tenant=tenant, mailbox_id=m, status=Investigation.Status.PENDING_ACTION)
        for m in investigated
    )
    kept = {event_id for event_id, at, sender in old if sender in set(investigated)} | evidence_ids
    return {"old": len(old), "kept": kept, "rows": rows}


PARTITIONED = (
    ("mailflow_messageevent", "time", 1),
    ("mailboxes_signin", "time", 1),
    ("mailboxes_directorychange", "at", 1),
    ("mailflow_ingestedevent", "time", 7),
)


def prepare(*, partitioned: bool, now: datetime) -> None:
    """Empty the tables the seed fills and make them partitioned (with partitions over the 60 days and the
    week ahead) or plain."""
    from django.db import connection

    from core.partitions import create_partitions, partition_table, unpartition_table

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE mailflow_messageevent, mailflow_ingestedevent, alerts_alertevidence, alerts_alert, "
            "investigations_investigation, mailboxes_mailbox, mailboxes_accepteddomain CASCADE"
        )
    for table, column, days in PARTITIONED:
        if partitioned:
            partition_table(table, column, days, back_days=0, ahead_days=0)
            create_partitions(
                table, column, days, (now - timedelta(days=DAYS)).date(), (now + timedelta(days=7)).date()
            )
        else:
            unpartition_table(table)


def run(label: str, *, partitioned: bool, messages: int, now: datetime) -> tuple[float, datetime]:
    """Seed, purge and check; prints the figures and returns the purge's rows/s and its message cutoff. A
    plain copy of the message table is taken before the purge (``bench_reference``) for the reference."""
    import time_machine
    from django.db import connection

    from core.retention import cutoff, purge_expired, retained_table
    from mailflow.models import IngestedEvent, MessageEvent

    prepare(partitioned=partitioned, now=now)
    started = time.perf_counter()
    seeded = seed(random.Random(11), now, messages)
    table = MessageEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_reference")
        cursor.execute(f'CREATE TABLE bench_reference (LIKE "{table}" INCLUDING ALL)')
        cursor.execute(f'INSERT INTO bench_reference SELECT * FROM "{table}"')  # noqa: S608
        cursor.execute("ANALYZE")
    print(
        f"[{label}] seeded {messages:,} messages and ledger rows over {DAYS} days, {seeded['old']:,} past 30 "
        f"days, {len(seeded['kept']):,} of those kept (alert evidence, open investigations) "
        f"({time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    with time_machine.travel(now, tick=False):
        started = time.perf_counter()
        purged = purge_expired()["default"]
        elapsed = time.perf_counter() - started
        message_cutoff = cutoff(retained_table("messages"), now)
        ledger_cutoff = cutoff(retained_table("ingest_ledger"), now)

    total = sum(purged.values())
    rows = seeded["rows"]
    expired = {event_id for event_id, at, _ in rows if at < message_cutoff}
    kept = {event_id for event_id in seeded["kept"] if event_id in expired}
    old_left = set(MessageEvent.objects.filter(time__lt=message_cutoff).values_list("event_id", flat=True))
    assert old_left == kept, "the purge kept other rows than the guards say"
    assert purged["messages"] == len(expired) - len(kept), "the purge counted other rows than it removed"
    ledger_left = set(IngestedEvent.objects.filter(time__lt=ledger_cutoff).values_list("event_id", flat=True))
    before_ledger_cutoff = {event_id for event_id, at, _ in rows if at < ledger_cutoff}
    assert ledger_left == kept & before_ledger_cutoff, (
        "the ledger lost the id of a kept event (or kept others)"
    )
    print(f"[{label}] purge_expired: {purged} (messages before {message_cutoff:%Y-%m-%d %H:%M})")
    print(
        f"[{label}] purge: {total:,} rows in {elapsed:.2f} s = {total / elapsed:,.0f} rows/s "
        f"(messages {purged['messages'] / elapsed:,.0f}/s of the run); kept rows intact",
        flush=True,
    )
    return total / elapsed, message_cutoff


def reference_delete(cutoff: datetime) -> float:
    """One plain DELETE of the message rows before ``cutoff`` from the plain copy taken before the purge
    (with the table's indexes), as the purge's yardstick; returns rows/s."""
    from django.db import connection

    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute("DELETE FROM bench_reference WHERE time < %s", [cutoff])
        rows, elapsed = cursor.rowcount, time.perf_counter() - started
        cursor.execute("DROP TABLE bench_reference")
    print(
        f"reference, one plain DELETE of {rows:,} message rows (a plain copy with the same indexes): "
        f"{elapsed:.2f} s = {rows / elapsed:,.0f} rows/s",
        flush=True,
    )
    return rows / elapsed


def main() -> None:
    messages = int(os.environ.get("BENCH_RETENTION_MESSAGES", 400_000))
    with bench_database(DATABASE):
        now = datetime(2031, 3, 4, 12, tzinfo=UTC)
        old_rate = None
        if os.environ.get("BENCH_RETENTION_OLD", "1") != "0":
            old_rate, _ = run("plain tables, old purge", partitioned=False, messages=messages, now=now)
        rate, cutoff = run("partitioned", partitioned=True, messages=messages, now=now)
        reference = reference_delete(cutoff)  # the message rows the partitioned purge went through
        print(
            f"partitioned purge {rate:,.0f} rows/s = {rate / reference:.2f}x a plain DELETE"
            + (f", {rate / old_rate:.1f}x the old purge ({old_rate:,.0f} rows/s)" if old_rate else "")
        )


if __name__ == "__main__":
    main()
