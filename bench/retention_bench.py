"""Retention purge benchmark: how fast beat's purge clears a large backlog of expired telemetry.

Seeds, with PostgreSQL ``COPY``, ``BENCH_RETENTION_MESSAGES`` (400,000) message events from 1,000
mailboxes spread evenly over 60 days, each with its ingest-ledger row (so about half is past the 30-day
window), 200 alerts holding 10 old messages each as evidence, and 20 open investigations (their mailboxes'
telemetry is kept). Then times :func:`core.retention.purge_expired` (5,000-row transactions, guards applied)
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
    return {"old": len(old), "kept": kept, "cutoff": cutoff}


def main() -> None:
    messages = int(os.environ.get("BENCH_RETENTION_MESSAGES", 400_000))
    with bench_database(DATABASE):
        import time_machine
        from django.db import connection

        from core.retention import purge_expired
        from mailflow.models import IngestedEvent, MessageEvent

        now = datetime(2031, 3, 4, 12, tzinfo=UTC)
        started = time.perf_counter()
        seeded = seed(random.Random(11), now, messages)
        table = MessageEvent._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE TABLE bench_reference (LIKE "{table}" INCLUDING ALL)')
            cursor.execute(f'INSERT INTO bench_reference SELECT * FROM "{table}"')  # noqa: S608
            cursor.execute("ANALYZE")
        print(
            f"seeded {messages:,} messages and ledger rows over {DAYS} days, {seeded['old']:,} past 30 days, "
            f"{len(seeded['kept']):,} of those kept (alert evidence, open investigations) "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )

        with time_machine.travel(now, tick=False):
            started = time.perf_counter()
            purged = purge_expired()["default"]
            elapsed = time.perf_counter() - started
        with connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute("DELETE FROM bench_reference WHERE time < %s", [seeded["cutoff"]])
            reference_rows, reference = cursor.rowcount, time.perf_counter() - started
            cursor.execute("DROP TABLE bench_reference")

        total = sum(purged.values())
        old_left = set(
            MessageEvent.objects.filter(time__lt=seeded["cutoff"]).values_list("event_id", flat=True)
        )
        ledger_left = IngestedEvent.objects.filter(time__lt=seeded["cutoff"]).count()
        assert old_left == seeded["kept"], "the purge kept other rows than the guards say"
        assert ledger_left == len(seeded["kept"]), "the ledger lost the id of a kept event (or kept others)"
        print(f"purge_expired: {purged}")
        print(
            f"purge: {total:,} rows in {elapsed:.1f} s = {total / elapsed:,.0f} rows/s "
            f"(messages {purged['messages'] / elapsed:,.0f}/s of the run); kept rows intact"
        )
        print(
            f"reference, one plain DELETE of {reference_rows:,} message rows (a copy with the same indexes): "
            f"{reference:.1f} s = {reference_rows / reference:,.0f} rows/s"
        )


if __name__ == "__main__":
    main()
