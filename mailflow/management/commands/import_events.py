"""``manage.py import_events FILE|-``: import NDJSON events (contract v1) of any size into a tenant.

First the whole file is validated, streamed in chunks of lines that forked processes (``--jobs``) decode and
validate, their results taken in file order (errors by line number, non-zero exit, nothing stored); the valid
events, in normal form, are spooled to a temporary file as they are validated. Then the spool is stored in
batches through the ingest service (``store_valid_events``), a reader thread decoding the next batch while one
is stored: the file is decoded and validated once. Each batch commits on its own, so an interrupted import
is completed by running the same command again: event ids make it idempotent (what was stored counts as
duplicates). Standard input (``-``) is spooled to a temporary file first.
"""

from __future__ import annotations

import gc
import os
import shutil
import struct
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, islice
from multiprocessing import get_context
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

# Events stored per transaction (``--batch-size``): a batch costs a fixed number of round trips to the
# database (about thirty: ledger, mailboxes, directory state, counters, commit), paid less often this way.
DEFAULT_BATCH_SIZE = 20_000
# Errors kept (and shown) at most; the count is always exact.
MAX_KEPT_ERRORS = 1000
SHOWN_ERRORS = 50
SHOWN_IDS = 20
WARNING_SAMPLES = 5
# For an address outside the known domains, the lines remembered for its error message.
LINES_PER_ADDRESS = 5
# Validation processes at most (``--jobs``' default: the CPUs this process may use, up to this).
MAX_JOBS = 4
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

    def merge(self, part: FileCheck) -> None:
        """Add what a later chunk of the file found (:func:`check_chunk`)."""
        self.events += part.events
        for error in part.errors:
            self.add_error(*error)
        self.error_count += part.error_count - len(part.errors)  # counted, not kept
        self.warning_count += part.warning_count
        self.warning_samples.extend(
            part.warning_samples[: max(0, WARNING_SAMPLES - len(self.warning_samples))]
        )
        self.declared_domains |= part.declared_domains
        for address, (count, places) in part.outside.items():
            entry = self.outside.setdefault(address, [0, []])
            entry[0] += count
            entry[1].extend(places[: LINES_PER_ADDRESS - len(entry[1])])


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


def encode_batch(events: list[ValidEvent]) -> bytes:
    """One batch of validated events (normal form and content hash) as a spool record: a length, then
    MessagePack."""
    payload = _SPOOL_ENCODER.encode([(e.id, e.type, e.time, e.data, e.owner, e.content_hash) for e in events])
    return _LENGTH.pack(len(payload)) + payload


def read_spool(spool: IO[bytes]) -> Iterator[list[ValidEvent]]:
    """The batches written as :func:`encode_batch` records, in order."""
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


def read_lines(handle: Iterable[bytes], start: int = 1) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, parsed event, None) or (line number, None, error) for every non-blank line; the first
    line is number ``start``.

    A ``message`` or ``sign_in`` line is decoded and shape-checked in one step by the compiled decoder
    (``mailflow.compiled``); any other line, or one it refuses, goes through the JSON decoder, whose messages
    the contract reports.
    """
    for number, raw in enumerate(handle, start=start):
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


def default_jobs() -> int:
    """The CPUs this process may run on, at most ``MAX_JOBS``."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_JOBS, available or 1))


def line_chunks(handle: IO[bytes], size: int) -> Iterator[tuple[int, list[bytes]]]:
    """The raw lines of ``handle`` by ``size``, each chunk with the number of its first line."""
    start, lines = 1, []
    for raw in handle:
        lines.append(raw)
        if len(lines) >= size:
            yield start, lines
            start, lines = start + len(lines), []
    if lines:
        yield start, lines


def check_chunk(
    tenant: Tenant, accepted_domains: set[str], lines: list[bytes], start: int
) -> tuple[FileCheck, bytes]:
    """Decode and validate one chunk of lines (the first numbered ``start``): what it found, and its valid
    events as a spool record when it has no error (else ``b""``). Runs in a validation process: no query
    (owner addresses outside ``accepted_domains`` are listed in ``outside`` for the caller to settle)."""
    found = FileCheck()
    events: list[Any] = []
    numbers: list[int] = []
    for number, event, problem in read_lines(lines, start):
        if problem is not None:
            found.add_error(number, None, problem)
            continue
        events.append(event)
        numbers.append(number)
    found.events = len(events)
    if not events:
        return found, b""
    report = validate_events(tenant, events, accepted_domains=accepted_domains, defer_domain_check=True)
    for error in report.errors:
        found.add_error(numbers[error["index"]], error["field"], error["error"])
    found.warning_count = len(report.warnings)
    found.warning_samples = [
        (numbers[warning["index"]], warning["field"], warning["warning"])
        for warning in report.warnings[:WARNING_SAMPLES]
    ]
    found.declared_domains = report.declared_domains
    for address, places in report.outside_addresses.items():
        found.outside[address] = [
            len(places),
            [(numbers[index], name) for index, name in places[:LINES_PER_ADDRESS]],
        ]
    record = encode_batch(report.events) if report.events and not found.error_count else b""
    return found, record


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
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"events stored per transaction (default {DEFAULT_BATCH_SIZE})",
        )
        parser.add_argument(
            "--jobs",
            type=int,
            default=default_jobs(),
            help="processes validating the file (default: the CPUs available, at most "
            f"{MAX_JOBS}; 1 validates in this process)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = options["verbosity"]
        batch_size = options["batch_size"]
        if batch_size < 1 or options["jobs"] < 1:
            raise CommandError("--batch-size and --jobs must be at least 1.")
        tenant = self._tenant(options.get("tenant"))
        path = options["file"]
        started = time.monotonic()
        with (
            bulk_collection(),
            self._open(path, options.get("stdin")) as handle,
            tempfile.TemporaryFile() as spool,
        ):
            check = self._validate(tenant, handle, batch_size, options["jobs"], spool)
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

    def _validate(
        self, tenant: Tenant, handle: IO[bytes], batch_size: int, jobs: int, spool: IO[bytes]
    ) -> FileCheck:
        """Pass 1: every line, in chunks of ``batch_size`` lines (validated by ``jobs`` processes, results
        taken in file order); owner addresses outside the domains known so far are settled at the end, once
        every ``mailbox`` event of the file has declared its domain. Each chunk's valid events are spooled
        (one stored batch each) until the first error; after an error nothing will be stored.
        """
        check = FileCheck()
        stored = AcceptedDomain.objects.domains_of(tenant)
        for part, record in self._checked_chunks(
            tenant, lambda: stored | check.declared_domains, handle, batch_size, jobs
        ):
            check.merge(part)
            if record and not check.error_count:
                spool.write(record)
                check.spooled_batches += 1
        self._settle_outside(tenant, check, stored | check.declared_domains)
        check.errors.sort(key=lambda e: e[0])
        return check

    def _checked_chunks(
        self,
        tenant: Tenant,
        accepted: Callable[[], set[str]],
        handle: IO[bytes],
        batch_size: int,
        jobs: int,
    ) -> Iterator[tuple[FileCheck, bytes]]:
        """:func:`check_chunk` of every chunk, in order. A file of more than one chunk is validated by
        ``jobs`` forked processes (validation is CPU-bound Python; the database has nothing to do yet), at
        most two chunks a process ahead of the one taken."""
        chunks = line_chunks(handle, batch_size)
        ahead = list(islice(chunks, 2))
        if jobs < 2 or len(ahead) < 2:
            for start, lines in chain(ahead, chunks):
                yield check_chunk(tenant, accepted(), lines, start)
            return
        with ProcessPoolExecutor(jobs, mp_context=get_context("fork")) as pool:
            pending: deque[Future[tuple[FileCheck, bytes]]] = deque()
            for start, lines in chain(ahead, chunks):
                pending.append(pool.submit(check_chunk, tenant, accepted(), lines, start))
                if len(pending) > 2 * jobs:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

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
        """Pass 2: store the ``batch_count`` spooled batches, each its own transaction, without validating
        them again. A reader thread decodes batch *n+1* while batch *n* is stored: the main thread spends much
        of a batch waiting for PostgreSQL (COPY, commit), with the GIL released.

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
