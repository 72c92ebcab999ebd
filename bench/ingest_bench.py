"""Ingest benchmark: ``import_events`` on 100k realistic events against a raw PostgreSQL COPY of the same
messages.

Run by ``make bench`` (``bench/run.py`` calls :func:`main`) or alone: ``python bench/ingest_bench.py``. It
uses the PostgreSQL server of ``DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/``) but always a
database of its own, ``soc_console_bench``, which it drops, creates and migrates first and drops at the end.

1. Generate ``BENCH_EVENTS`` (default 100,000) events with a simple seeded generator: 500 mailboxes declared
   by ``mailbox`` events, then mostly messages (1-6 recipients, a third external, some with URLs and bad
   verdicts), some sign-ins and a few inbox rule / forwarding / delegation changes, over a week. Written as
   NDJSON to a temporary file.
2. ``call_command("import_events", file)``: the full path (validate the whole file, then store it in batches
   through the ingest service: ledger, mailboxes, messages, sign-ins, directory state and history).
3. The reference: ``TRUNCATE`` the message table and ``COPY`` the same message rows into it with psycopg's
   ``cursor.copy`` (rows prepared beforehand; only the COPY and its commit are timed): the fastest a message
   row can get into PostgreSQL, with no validation, ledger or directory work.
4. The same-rows reference (issue 17): every row import_events wrote to the ledger, message, sign-in and
   minute-counter tables is exported as COPY text, the tables are emptied, and the rows are COPY'd back in
   one transaction (timed: COPY and commit). A message costs about three rows (its ledger row, its row and
   its sender's minute), so this is the raw-COPY rate of the same work, in events/s.

Prints the rates and their ratios. ``BENCH_EVENTS`` and ``BENCH_BATCH_SIZE`` (default: ``import_events``'
own) change the size and batches.
"""

from __future__ import annotations

import io
import json
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # to run alone: python bench/<name>.py
from bench.common import bench_database  # also sets the Django settings defaults

BENCH_DB = "soc_console_bench"
DOMAIN = "bench.example"
MAILBOXES = 500
EXTERNAL_DOMAINS = [f"partner{n}.example.net" for n in range(40)]
SUBJECTS = [
    "Weekly report",
    "Re: meeting",
    "Invoice {n}",
    "Lunch?",
    "Project update",
    "Fwd: contract",
    "Hello",
]
VERDICTS = ["clean"] * 90 + ["spam"] * 4 + ["bulk"] * 4 + ["phish", "malware"]
COUNTRIES = ["NL", "NL", "NL", "DE", "FR", "GB", "US", "BR"]
CLIENT_APPS = ["browser", "browser", "browser", "eas", "imap", "smtp", "other"]


def _event(event_type: str, event_id: str, at: str, **fields: Any) -> dict[str, Any]:
    """An event of the contract: its id, type and time first, then ``fields`` in the order given."""
    return {"id": event_id, "type": event_type, "time": at, **fields}


def generate(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` events: the mailbox events first, then a week of mixed telemetry in time order."""
    rng = random.Random(seed)
    start = datetime(2025, 3, 3, tzinfo=UTC)
    users = [f"user{n:04d}@{DOMAIN}" for n in range(MAILBOXES)]
    events: list[dict[str, Any]] = [
        {
            "id": f"mb-{n}",
            "type": "mailbox",
            "time": start.isoformat(),
            "address": address,
            "display_name": f"User {n}",
            "department": rng.choice(["Finance", "Sales", "IT", "HR", "Legal"]),
            "vip": n % 50 == 0,
        }
        for n, address in enumerate(users)
    ]
    step = timedelta(days=7) / max(1, count - len(events))
    for n in range(count - len(events)):
        at = (start + step * n).isoformat()
        user = users[int(rng.paretovariate(1.2)) % MAILBOXES]
        roll = rng.random()
        if roll < 0.95:
            recipients = []
            for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 6])):
                if rng.random() < 0.33:
                    recipients.append(f"contact{rng.randrange(2000)}@{rng.choice(EXTERNAL_DOMAINS)}")
                else:
                    recipients.append(rng.choice(users))
            event = _event(
                "message",
                f"msg-{n}",
                at,
                sender=user,
                recipients=recipients,
                subject=rng.choice(SUBJECTS).format(n=n),
                verdict=rng.choice(VERDICTS),
                size=rng.randrange(2_000, 2_000_000),
                client_ip=f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                internet_message_id=f"<{n}.{rng.getrandbits(40):x}@{DOMAIN}>",
                body_hash=f"{rng.getrandbits(128):032x}",
            )
            if rng.random() < 0.2:
                event["urls"] = [f"https://{rng.choice(EXTERNAL_DOMAINS)}/p/{rng.getrandbits(32):x}"]
        elif roll < 0.98:
            event = _event(
                "sign_in",
                f"si-{n}",
                at,
                user=user,
                ip=f"198.51.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                country=rng.choice(COUNTRIES),
                client_app=rng.choice(CLIENT_APPS),
                result="success" if rng.random() < 0.9 else "failure",
                user_agent="Mozilla/5.0 (bench)",
            )
        elif roll < 0.99:
            event = _event(
                "inbox_rule",
                f"rule-{n}",
                at,
                mailbox=user,
                rule_id=f"r-{rng.randrange(3)}",
                operation=rng.choice(["created", "updated", "deleted"]),
                name="Move invoices",
                conditions={"subject_contains": ["invoice"]},
                actions={"move_to_folder": "RSS Feeds", "mark_as_read": True},
            )
        elif roll < 0.995:
            forward_to = (
                f"out{rng.randrange(9)}@{rng.choice(EXTERNAL_DOMAINS)}" if rng.random() < 0.6 else None
            )
            event = _event("forwarding", f"fwd-{n}", at, mailbox=user, forward_to=forward_to)
        else:
            event = _event(
                "delegation",
                f"del-{n}",
                at,
                mailbox=user,
                delegate=rng.choice(users),
                access=rng.choice(["full_access", "send_as", "send_on_behalf"]),
                operation=rng.choice(["added", "removed"]),
            )
        events.append(event)
    return events


def message_rows(events: list[dict[str, Any]], tenant_id: int, sender_ids: dict[str, int]) -> list[tuple]:
    """The message events as rows of the message table, prepared the way the ingest service stores them."""
    received_at = datetime.now(UTC)
    rows = []
    for event in events:
        if event["type"] != "message":
            continue
        recipients = list(dict.fromkeys(r.lower() for r in event["recipients"]))
        external = [r.rpartition("@")[2] for r in recipients if not r.endswith(f"@{DOMAIN}")]
        rows.append(
            (
                tenant_id,
                event["id"],
                datetime.fromisoformat(event["time"]),
                sender_ids[event["sender"]],
                json.dumps(recipients),
                len(recipients),
                len(recipients) - len(external),
                len(external),
                json.dumps(sorted(set(external))),
                event["subject"],
                event["verdict"],
                json.dumps(event.get("urls", [])),
                event["size"],
                event["client_ip"],
                event["internet_message_id"],
                event["body_hash"],
                received_at,
            )
        )
    return rows


# The tables import_events fills row by row for this stream (the directory tables are a few hundred rows).
STORED_TABLES = (
    "mailflow_ingestedevent",
    "mailflow_messageevent",
    "mailboxes_signin",
    "mailflow_sendingminute",
)


def export_rows(connection, tables: tuple[str, ...]) -> dict[str, tuple[str, bytes]]:
    """Each table's rows (without the id column) as COPY text, with the column list."""
    exported = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(
                "SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position) "
                "FROM information_schema.columns WHERE table_name = %s AND column_name <> 'id'",
                (table,),
            )
            columns = cursor.fetchone()[0]
            data = bytearray()
            # the columns are quote_ident()-ed by the server above; the tables are this module's constants
            query = f"COPY (SELECT {columns} FROM {table}) TO STDOUT"  # noqa: S608
            with cursor.cursor.copy(query) as copy:
                for chunk in copy:
                    data += chunk
            exported[table] = (columns, bytes(data))
    return exported


def copy_every_row(connection, exported: dict[str, tuple[str, bytes]]) -> tuple[float, int]:
    """Empty the tables, then COPY their rows back in one transaction, timed (COPY and commit only)."""
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE TABLE {', '.join(exported)} RESTART IDENTITY CASCADE")
    connection.ensure_connection()
    raw = connection.connection
    rows = sum(data.count(b"\n") for _, data in exported.values())
    started = time.perf_counter()
    with raw.cursor() as cursor:
        for table, (columns, data) in exported.items():
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                copy.write(data)
    raw.commit()
    return time.perf_counter() - started, rows


def main() -> None:
    count = int(os.environ.get("BENCH_EVENTS", "100000"))
    with bench_database(BENCH_DB):
        from django.core.management import call_command
        from django.db import connection

        from core.models import Tenant
        from mailboxes.models import Mailbox
        from mailflow.ingest import MESSAGE_COLUMNS
        from mailflow.management.commands.import_events import DEFAULT_BATCH_SIZE
        from mailflow.models import IngestedEvent, MessageEvent

        batch_size = int(os.environ.get("BENCH_BATCH_SIZE") or DEFAULT_BATCH_SIZE)
        events = generate(count)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "events.ndjson"
            with path.open("w") as out:
                for event in events:
                    out.write(json.dumps(event) + "\n")
            size_mb = path.stat().st_size / 1e6
            output = io.StringIO()
            started = time.perf_counter()
            call_command(
                "import_events", str(path), batch_size=batch_size, stdout=output, stderr=io.StringIO()
            )
            import_seconds = time.perf_counter() - started

        tenant = Tenant.objects.default()
        messages = sum(1 for e in events if e["type"] == "message")
        stored, ledger = MessageEvent.objects.filter(tenant=tenant).count(), IngestedEvent.objects.count()
        if stored != messages or ledger != count:
            raise SystemExit(f"import_events stored {stored}/{messages} messages and {ledger}/{count} ids")

        exported = export_rows(connection, STORED_TABLES)
        senders = dict(Mailbox.objects.filter(tenant=tenant).values_list("address", "pk"))
        rows = message_rows(events, tenant.pk, senders)
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE TABLE mailflow_messageevent RESTART IDENTITY CASCADE")
        connection.ensure_connection()
        raw = connection.connection
        copy_sql = f"COPY mailflow_messageevent ({', '.join(MESSAGE_COLUMNS)}) FROM STDIN"
        started = time.perf_counter()
        with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)
        raw.commit()
        copy_seconds = time.perf_counter() - started
        copied = MessageEvent.objects.count()
        if copied != len(rows):
            raise SystemExit(f"COPY stored {copied}/{len(rows)} rows")

        every_row_seconds, every_row_count = copy_every_row(connection, exported)
        import_rate = count / import_seconds
        copy_rate = len(rows) / copy_seconds
        print(
            f"events: {count:,} ({messages:,} messages; {size_mb:.1f} MB of NDJSON), "
            f"batch size {batch_size:,}"
        )
        print(
            f"import_events (validate file, then store: ledger, messages, directory): {import_seconds:.2f} s"
        )
        print(f"  -> {import_rate:,.0f} events/s")
        print(f"reference: raw COPY of the {len(rows):,} message rows: {copy_seconds:.2f} s")
        print(f"  -> {copy_rate:,.0f} rows/s")
        print(f"ratio: COPY is {copy_rate / import_rate:.1f}x import_events (per row/event)")
        every_rate = count / every_row_seconds
        print(
            f"reference: raw COPY of every row import_events wrote for the {count:,} events "
            f"({every_row_count:,} rows: ledger, messages, sign-ins, minute counters; "
            "exported as COPY text first): "
            f"{every_row_seconds:.2f} s"
        )
        print(f"  -> {every_rate:,.0f} events/s ({every_row_count / every_row_seconds:,.0f} rows/s)")
        print(
            f"import_events is {import_rate / every_rate:.0%} of a raw COPY of the same rows "
            f"(goal >= 40%); {import_rate / copy_rate:.0%} of the message-row COPY rate"
        )
        print(f"import_events said: {output.getvalue().strip()}")


if __name__ == "__main__":
    main()
