"""``manage.py import_events FILE|-``: import NDJSON events (contract v1) of any size into a tenant.

First the whole file is validated, streamed line by line (errors by line number, non-zero exit, nothing
stored); the valid events, in normal form, are spooled to a temporary file as they are validated. Then the
spool is stored in batches through the ingest service (``store_valid_events``): the file is decoded and
validated once. Each batch commits on its own, so an interrupted import is completed by running the same
command again: event ids make it idempotent (what was stored counts as duplicates). Standard input (``-``) is
spooled to a temporary file first.
"""

from __future__ import annotations

import gc
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import msgspec
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.models import Tenant
from mailboxes.addresses import domain_of
from mailboxes.models import AcceptedDomain, Mailbox
from mailboxes.services import declare_accepted_domains
from mailflow.compiled import decode_line
from mailflow.decoding import DecodeError, decode_json
from mailflow.ingest import store_valid_events
from mailflow.validation import ValidEvent, outside_domain_message, validate_events

# Errors kept (and shown) at most; the count is always exact.
MAX_KEPT_ERRORS = 1000
SHOWN_ERRORS = 50
SHOWN_IDS = 20
# For an address outside the known domains, the lines remembered for its error message.
LINES_PER_ADDRESS = 5
# Allocations between two young-generation collections while importing (CPython's default is 700).
BULK_GC_THRESHOLD = 50_000


@dataclass
class FileCheck:
    """What the validation pass found: errors by line, the domains the file declares, counts."""

    events: int = 0
    error_count: int = 0
    errors: list[tuple[int, str | None, str]] = field(default_factory=list)
    warning_count: int = 0
    warning_samples: list[tuple[int, str, str]] = field(default_factory=list)
    declared_domains: set[str] = field(default_factory=set)
    spooled_batches: int = 0
    # address -> [number of events, first lines and fields]
    outside: dict[str, list[Any]] = field(default_factory=dict)

    def add_error(self, line: int, field_name: str | None, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append((line, field_name, message))


@dataclass
class Totals:
    accepted: int = 0
    duplicates: int = 0
    conflicts: list[str] = field(default_factory=list)
    conflict_count: int = 0
    batches: int = 0


_LENGTH = struct.Struct("<I")
_SPOOL_ENCODER = msgspec.msgpack.Encoder()
_SPOOL_DECODER = msgspec.msgpack.Decoder()


def spool_batch(spool: IO[bytes], events: list[ValidEvent]) -> None:
    """Append one batch of validated events (normal form and content hash) to ``spool``: a length, then
    MessagePack."""
    payload = _SPOOL_ENCODER.encode([(e.id, e.type, e.time, e.data, e.owner, e.content_hash) for e in events])
    spool.write(_LENGTH.pack(len(payload)))
    spool.write(payload)


def read_spool(spool: IO[bytes]) -> Iterator[list[ValidEvent]]:
    """The batches :func:`spool_batch` wrote, in order."""
    while header := spool.read(_LENGTH.size):
        (length,) = _LENGTH.unpack(header)
        yield [
            ValidEvent(
                index=index,
                id=event_id,
                type=event_type,
                time=time,
                data=data,
                owner=owner,
                _hash=content_hash,
            )
            for index, (event_id, event_type, time, data, owner, content_hash) in enumerate(
                _SPOOL_DECODER.decode(spool.read(length))
            )
        ]


@contextmanager
def bulk_collection() -> Iterator[None]:
    """The cyclic garbage collector tuned for a bulk import, then put back as it was.

    An import allocates millions of short-lived objects (decoded events, normal forms, rows) that reference
    counting frees; with CPython's defaults they trigger thousands of collections, each of the older
    generations walking every object Django and its libraries loaded, for about a third of the import's
    CPU. The objects alive when the import starts are frozen out of collection, and young collections run
    every ``BULK_GC_THRESHOLD`` allocations: cycles are still collected.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(BULK_GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def read_lines(handle: IO[bytes]) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, parsed event, None) or (line number, None, error) for every non-blank line.

    A ``message`` or ``sign_in`` line is decoded and shape-checked in one step by the compiled decoder
    (``mailflow.compiled``); any other line, or one it refuses, goes through the JSON decoder, whose messages
    the contract reports.
    """
    for number, raw in enumerate(handle, start=1):
        fast = decode_line(raw) if b'"type"' in raw else None
        if fast is not None:
            yield number, fast, None
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield number, None, f"not UTF-8 (byte {exc.start})"
            continue
        if not text.strip():
            continue
        try:
            yield number, decode_json(text), None
        except DecodeError as exc:
            yield number, None, f"not valid JSON: {exc.message}"


class Command(BaseCommand):
    help = (
        "Import NDJSON events (one JSON event per line; '-' reads standard input) into a tenant. "
        "The whole file "
        "is validated first and nothing is stored if any line is invalid; then it is stored in batches. "
        "Re-running after an interruption completes the import (event ids make it idempotent)."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="NDJSON file, or - for standard input")
        parser.add_argument(
            "--tenant", help="slug of the tenant to import into (default: the default tenant)"
        )
        parser.add_argument(
            "--batch-size", type=int, default=5000, help="events stored per transaction (default 5000)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = options["verbosity"]
        batch_size = options["batch_size"]
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        tenant = self._tenant(options.get("tenant"))
        path = options["file"]
        started = time.monotonic()
        with (
            bulk_collection(),
            self._open(path, options.get("stdin")) as handle,
            tempfile.TemporaryFile() as spool,
        ):
            check = self._validate(tenant, handle, batch_size, spool)
            validated = time.monotonic()
            self._report_warnings(check)
            if check.error_count:
                self._report_errors(check)
                raise CommandError(
                    f"{check.error_count} error(s) in {path}: nothing was imported. "
                    "Fix the lines above and re-run."
                )
            declare_accepted_domains(tenant, check.declared_domains, source_label="import")
            spool.seek(0)
            totals = self._store(tenant, spool, check.spooled_batches)
        finished = time.monotonic()
        elapsed = max(finished - started, 1e-9)
        self.stdout.write(
            f"Imported {path} into tenant {tenant.slug}: {totals.accepted} accepted, "
            f"{totals.duplicates} duplicate, {totals.conflict_count} conflicting "
            f"({check.events} events, {totals.batches} batches; validated in "
            f"{validated - started:.1f} s, stored in {finished - validated:.1f} s; "
            f"{check.events / elapsed:.0f} events/s)."
        )
        if totals.conflicts:
            shown = ", ".join(totals.conflicts[:SHOWN_IDS])
            more = (
                f" and {totals.conflict_count - SHOWN_IDS} more" if totals.conflict_count > SHOWN_IDS else ""
            )
            self.stderr.write(
                f"Conflicting ids (stored earlier with other content, not imported): {shown}{more}"
            )

    def _tenant(self, slug: str | None) -> Tenant:
        if not slug:
            return Tenant.objects.default()
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {slug!r}.")
        return tenant

    def _open(self, path: str, stdin: IO | None) -> IO[bytes]:
        if path != "-":
            try:
                return open(path, "rb")
            except OSError as exc:
                raise CommandError(f"Cannot read {path}: {exc.strerror}.") from exc
        source = stdin if stdin is not None else sys.stdin
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the caller's `with`
        shutil.copyfileobj(getattr(source, "buffer", source), spool)
        spool.seek(0)
        return spool

    def _validate(self, tenant: Tenant, handle: IO[bytes], batch_size: int, spool: IO[bytes]) -> FileCheck:
        """Pass 1: every line, in chunks; owner addresses outside the domains known so far are settled at the
        end, once every ``mailbox`` event of the file has declared its domain. Each chunk's valid events are
        spooled (one stored batch each) until the first error; after an error nothing will be stored.
        """
        check = FileCheck()
        stored = AcceptedDomain.objects.domains_of(tenant)
        chunk: list[Any] = []
        lines: list[int] = []

        def flush() -> None:
            report = validate_events(
                tenant, chunk, accepted_domains=stored | check.declared_domains, defer_domain_check=True
            )
            for error in report.errors:
                check.add_error(lines[error["index"]], error["field"], error["error"])
            check.warning_count += len(report.warnings)
            for warning in report.warnings[: max(0, 5 - len(check.warning_samples))]:
                check.warning_samples.append((lines[warning["index"]], warning["field"], warning["warning"]))
            check.declared_domains |= report.declared_domains
            if not check.error_count and report.events:
                spool_batch(spool, report.events)
                check.spooled_batches += 1
            for address, places in report.outside_addresses.items():
                entry = check.outside.setdefault(address, [0, []])
                entry[0] += len(places)
                room = LINES_PER_ADDRESS - len(entry[1])
                entry[1].extend((lines[index], name) for index, name in places[:room])
            chunk.clear()
            lines.clear()

        for number, event, error in read_lines(handle):
            if error is not None:
                check.add_error(number, None, error)
                continue
            check.events += 1
            chunk.append(event)
            lines.append(number)
            if len(chunk) >= batch_size:
                flush()
        if chunk:
            flush()
        self._settle_outside(tenant, check, stored | check.declared_domains)
        check.errors.sort(key=lambda e: e[0])
        return check

    def _settle_outside(self, tenant: Tenant, check: FileCheck, accepted: set[str]) -> None:
        pending = sorted(a for a in check.outside if domain_of(a) not in accepted)
        known: set[str] = set()
        for start in range(0, len(pending), 5000):
            chunk = pending[start : start + 5000]
            known |= set(
                Mailbox.objects.filter(tenant=tenant, address__in=chunk).values_list("address", flat=True)
            )
        for address in pending:
            if address in known:
                continue
            count, places = check.outside[address]
            for number, field_name in places:
                check.add_error(number, field_name, outside_domain_message(address))
            check.error_count += count - len(places)  # the rest are counted, not listed

    def _store(self, tenant: Tenant, spool: IO[bytes], batch_count: int) -> Totals:
        """Pass 2: store the ``batch_count`` spooled batches, each its own transaction, without validating them
        again. A reader thread decodes batch *n+1* while batch *n* is stored: the main thread spends much of a
        batch waiting for PostgreSQL (COPY, commit), with the GIL released.

        Recipients are split internal / external against the accepted domains as they are now, with every
        domain the file declares.
        """
        totals = Totals()
        domains = AcceptedDomain.objects.domains_of(tenant)
        batches = read_spool(spool)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-spool") as reader:
            upcoming = reader.submit(next, batches, None)
            for number in range(1, batch_count + 1):
                events = upcoming.result()
                if events is None:
                    raise CommandError("The spooled events ended early; nothing more was stored.")
                if number < batch_count:
                    upcoming = reader.submit(next, batches, None)
                # Every batch but the last commits without waiting for the disk; the last, durable commit
                # flushes them all before the import reports success (a crash before it: re-run the import).
                result = store_valid_events(
                    tenant, events, stored_domains=domains, source="import", durable=number == batch_count
                )
                totals.accepted += result.accepted
                totals.duplicates += result.duplicates
                totals.conflict_count += len(result.conflicts)
                totals.conflicts.extend(result.conflicts[: max(0, SHOWN_IDS - len(totals.conflicts))])
                totals.batches += 1
                if self.verbosity >= 2:
                    self.stderr.write(f"  batch {totals.batches}: +{result.accepted}")
        return totals

    def _report_errors(self, check: FileCheck) -> None:
        for number, field_name, message in check.errors[:SHOWN_ERRORS]:
            where = f"line {number}" + (f": {field_name}" if field_name else "")
            self.stderr.write(f"{where}: {message}")
        if check.error_count > SHOWN_ERRORS:
            self.stderr.write(f"… and {check.error_count - SHOWN_ERRORS} more error(s).")

    def _report_warnings(self, check: FileCheck) -> None:
        if not check.warning_count:
            return
        samples = "; ".join(f"line {n}: {f}: {w}" for n, f, w in check.warning_samples)
        self.stderr.write(f"{check.warning_count} warning(s) (unknown fields are ignored), e.g. {samples}")
