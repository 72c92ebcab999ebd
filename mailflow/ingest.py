"""The ingest service (contract v1, DESIGN section 4): one entry point for the API, ``import_events``, the
simulator, the Postfix policy service and connectors.

``ingest_events`` validates a batch, then stores it in one transaction:

- *strict* mode (API, ``import_events``): any invalid event and nothing is stored;
- *lenient* mode (connectors, the policy service): invalid events are rejected alone and reported.

Identity is the event id, unique per tenant, kept for every type in the ``IngestedEvent`` ledger with a hash
of the event's normal form: same id and same content is a duplicate (counted, nothing written), same id and
other content a conflict (counted, reported, not stored). Inside one batch the first event of an id is
the one considered; a later one with the same content is a duplicate, with other content a conflict.
Directory events are applied in event-time order by the ``mailboxes`` services, so the newest event is the
state whatever order events arrive in. Writes are bulk: a batch costs a fixed number of queries, not one per
event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import msgspec
from celery import current_app
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.bulk import insert_rows
from core.models import Tenant
from mailboxes.addresses import domain_of
from mailboxes.models import SignIn
from mailboxes.services import (
    MAILBOX_ATTRIBUTES,
    DelegationChange,
    ForwardingChange,
    InboxRuleChange,
    MailboxChange,
    apply_delegation_changes,
    apply_inbox_rule_changes,
    declare_accepted_domains,
    set_forwardings,
    upsert_mailboxes,
)

from . import staging
from .counters import add_minutes, count_sent, minute_of
from .models import EventType, MessageEvent
from .validation import ValidationReport, ValidEvent, validate_events

__all__ = [
    "IngestResult",
    "ValidationReport",
    "ValidEvent",
    "ingest_events",
    "store_valid_events",
    "validate_events",
]

STRICT = "strict"
LENIENT = "lenient"
MODES = (STRICT, LENIENT)
# A concurrent batch may store the same new ids (or mailboxes) first; the batch is then sorted again.
_ATTEMPTS = 3


@dataclass
class IngestResult:
    """What one call stored and found.

    ``accepted`` events were stored; ``duplicates`` were already stored (or repeated in the batch);
    ``conflicts`` lists the ids already stored with other content (not stored). ``errors`` / ``warnings`` are
    those of validation (in strict mode any error means nothing was stored); ``rejected`` counts the invalid
    events. ``affected_mailbox_ids`` and ``time_range`` (earliest, latest event time) describe the stored
    events, for the detection step.
    """

    accepted: int = 0
    duplicates: int = 0
    conflicts: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    affected_mailbox_ids: set[int] = field(default_factory=set)
    time_range: tuple[datetime, datetime] | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> dict[str, Any]:
        """The counts an API caller or an operator reads."""
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "conflicts": len(self.conflicts),
            "conflicting_ids": self.conflicts,
            "warnings": self.warnings,
        }


@dataclass
class _Stored:
    accepted: int = 0
    duplicates: int = 0
    conflicts: list[str] = field(default_factory=list)
    affected_mailbox_ids: set[int] = field(default_factory=set)
    time_range: tuple[datetime, datetime] | None = None


def ingest_events(
    tenant: Tenant,
    events: Sequence[Any],
    *,
    mode: str = STRICT,
    source: str = "api",
    base_index: int = 0,
) -> IngestResult:
    """Validate and store a batch of events for ``tenant``, atomically; see the module docstring.

    ``source`` names the channel (``api``, ``import``, ``simulator``, ``postfix``, ``connector``) in the
    directory history. Error and warning indexes are ``base_index`` + position in ``events``. Enqueues nothing
    itself: :func:`_after_commit` runs once the batch is committed.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    report = validate_events(tenant, events, base_index=base_index)
    result = IngestResult(
        errors=report.errors, warnings=report.warnings, rejected=len(report.invalid_indexes)
    )
    if (report.errors and mode == STRICT) or not report.events:
        return result
    return store_valid_events(
        tenant, report.events, stored_domains=report.stored_domains, source=source, into=result
    )


def store_valid_events(
    tenant: Tenant,
    events: list[ValidEvent],
    *,
    stored_domains: set[str],
    source: str,
    into: IngestResult | None = None,
    durable: bool = True,
) -> IngestResult:
    """Store events already validated (by :func:`validate_events`, against ``stored_domains``) in one
    transaction: ``import_events`` validates a whole file once, then stores it batch by batch through here.

    A concurrent batch storing the same new ids (or mailboxes) first makes the transaction fail; it is
    sorted again, at most ``_ATTEMPTS`` times.

    ``durable=False`` (``import_events``, every batch but its last) commits without waiting for the WAL
    flush on PostgreSQL (``synchronous_commit = off`` for that transaction): a server crash may lose the last
    such batches, which re-running the import restores, and the import's final, durable commit flushes all
    of them before it reports success. Callers that answer a client (the API, connectors) keep the default.
    """
    result = into or IngestResult()
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with transaction.atomic():
                if not durable and connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute("SET LOCAL synchronous_commit TO OFF")
                stored = _store(tenant, events, stored_domains, source=source)
                result.accepted, result.duplicates = stored.accepted, stored.duplicates
                result.conflicts = stored.conflicts
                result.affected_mailbox_ids = stored.affected_mailbox_ids
                result.time_range = stored.time_range
                if stored.accepted:
                    transaction.on_commit(partial(_after_commit, tenant, result))
            break
        except IntegrityError:
            if attempt == _ATTEMPTS:
                raise
    return result


def _after_commit(tenant: Tenant, result: IngestResult) -> None:
    """Once a batch that stored something is committed: one ``alerts.evaluate`` task for the whole batch.

    Enqueued by task name (mailflow never imports alerts, a higher layer); embedded mode runs it in-process.
    """
    if not result.affected_mailbox_ids or result.time_range is None:
        return
    start, end = result.time_range
    current_app.signature(
        "alerts.evaluate",
        args=(tenant.pk, sorted(result.affected_mailbox_ids), start.isoformat(), end.isoformat()),
    ).apply_async()


def _split_known(tenant: Tenant, events: list[ValidEvent], stored: _Stored) -> list[ValidEvent]:
    """The events not stored yet, whose ledger rows it writes; counts duplicates (in the batch or the
    ledger) and conflicts. Set-based on PostgreSQL (:mod:`mailflow.staging`)."""
    unique: dict[str, ValidEvent] = {}
    for event in events:
        first = unique.get(event.id)
        if first is None:
            unique[event.id] = event
        elif first.content_hash == event.content_hash:
            stored.duplicates += 1
        else:
            stored.conflicts.append(event.id)  # the first one of the batch is the one stored
    known = staging.store_ledger_rows(tenant, list(unique.values()), received_at=timezone.now())
    if not known:
        return list(unique.values())
    new = []
    for event in unique.values():
        content_hash = known.get(event.id)
        if content_hash is None:
            new.append(event)
        elif content_hash == event.content_hash:
            stored.duplicates += 1
        else:
            stored.conflicts.append(event.id)
    return new


def _store(tenant: Tenant, events: list[ValidEvent], stored_domains: set[str], *, source: str) -> _Stored:
    stored = _Stored()
    new = _split_known(tenant, events, stored)
    if not new:
        return stored
    # Times go to COPY as ISO text (the normal form's ``time``): formatting a datetime costs more.
    received = timezone.now().isoformat()
    by_type: dict[str, list[ValidEvent]] = {t: [] for t in EventType.values}
    for event in new:
        by_type[event.type].append(event)

    declared = {domain_of(e.owner) for e in by_type[EventType.MAILBOX]}
    if declared - stored_domains:
        # Re-reads the stored domains: a concurrent batch may have declared some since validation.
        declare_accepted_domains(tenant, declared, source_label=source)
    accepted_domains = stored_domains | declared

    mailboxes = upsert_mailboxes(tenant, _mailbox_changes(new), source=source)
    owner_ids = {address: mailbox.pk for address, mailbox in mailboxes.items()}
    message_rows, minutes = _message_rows(
        tenant.pk, by_type[EventType.MESSAGE], owner_ids, accepted_domains, received
    )
    insert_rows(MessageEvent, MESSAGE_COLUMNS, message_rows)
    add_minutes(tenant.pk, minutes)
    insert_rows(
        SignIn,
        SIGN_IN_COLUMNS,
        [_sign_in_row(tenant.pk, e, owner_ids[e.owner], received) for e in by_type[EventType.SIGN_IN]],
    )
    apply_inbox_rule_changes(
        tenant,
        [
            InboxRuleChange(
                mailbox_id=mailboxes[e.owner].pk,
                rule_id=e.data["rule_id"],
                operation=e.data["operation"],
                at=e.time,
                name=e.data["name"],
                conditions=e.data["conditions"],
                actions=e.data["actions"],
                enabled=e.data["enabled"],
                event_id=e.id,
            )
            for e in by_type[EventType.INBOX_RULE]
        ],
        source=source,
    )
    set_forwardings(
        tenant,
        [
            ForwardingChange(mailboxes[e.owner].pk, e.time, e.data["forward_to"], e.data["keep_copy"], e.id)
            for e in by_type[EventType.FORWARDING]
        ],
        source=source,
    )
    apply_delegation_changes(
        tenant,
        [
            DelegationChange(
                mailboxes[e.owner].pk, e.data["delegate"], e.data["access"], e.data["operation"], e.time, e.id
            )
            for e in by_type[EventType.DELEGATION]
        ],
        source=source,
    )
    stored.accepted = len(new)
    stored.affected_mailbox_ids = {owner_ids[e.owner] for e in new}
    times = [e.time for e in new]
    stored.time_range = (min(times), max(times))
    return stored


def _mailbox_changes(events: list[ValidEvent]) -> list[MailboxChange]:
    """What ``upsert_mailboxes`` needs of a batch: every ``mailbox`` event, and of the other events only the
    earliest naming each owner (the first in the batch among equal times). A later one could neither
    create the mailbox nor move its ``first_seen`` back, so the result is the same as passing them all, and
    a batch of 5,000 messages from a few hundred senders hands over a few hundred changes."""
    earliest: dict[str, ValidEvent] = {}
    kept: list[ValidEvent | None] = []  # in batch order; None where an event was superseded
    position: dict[str, int] = {}
    for event in events:
        if event.type == EventType.MAILBOX:
            kept.append(event)
            continue
        first = earliest.get(event.owner)
        if first is None or event.time < first.time:
            if first is not None:
                kept[position[event.owner]] = None
            earliest[event.owner] = event
            position[event.owner] = len(kept)
            kept.append(event)
    return [
        MailboxChange(
            e.owner,
            e.time,
            (
                {k: e.data[k] for k in MAILBOX_ATTRIBUTES if k in e.data}
                if e.type == EventType.MAILBOX
                else None
            ),
            e.id,
        )
        for e in kept
        if e is not None
    ]


# What a message event stores past its identity (tenant, id, time, sender), in row order; the read API shows
# the same fields.
MESSAGE_DETAILS = (
    "recipients",
    "recipient_count",
    "internal_count",
    "external_count",
    "external_domains",
    "subject",
    "verdict",
    "urls",
    "size",
    "client_ip",
    "internet_message_id",
    "body_hash",
    "received_at",
)
MESSAGE_COLUMNS = ("tenant_id", "event_id", "time", "sender_id", *MESSAGE_DETAILS)
SIGN_IN_COLUMNS = (
    "tenant_id",
    "event_id",
    "mailbox_id",
    "time",
    "ip",
    "country",
    "client_app",
    "result",
    "user_agent",
    "received_at",
)
_EMPTY_LIST = "[]"


def _json(value: list) -> str:
    return msgspec.json.encode(value).decode() if value else _EMPTY_LIST


def _message_rows(
    tenant_id: int,
    events: list[ValidEvent],
    owner_ids: dict[str, int],
    accepted_domains: set[str],
    now: str,
) -> tuple[list[tuple], dict[tuple[int, int], list[int]]]:
    """The ``MessageEvent`` rows of ``events`` in ``MESSAGE_COLUMNS`` order (recipients split by direction at
    ingest time), and their sums per (sender, minute) for the minute counters, built in one pass."""
    rows = []
    minutes: dict[tuple[int, int], list[int]] = {}
    external_domain: dict[str, str] = {}  # recipient -> its domain when outside, "" when inside
    bad_verdicts = MessageEvent.BAD_VERDICTS
    for event in events:
        data = event.data
        recipients: list[str] = data["recipients"]
        external_domains = []
        for recipient in recipients:
            domain = external_domain.get(recipient)
            if domain is None:
                domain = domain_of(recipient)
                domain = external_domain[recipient] = "" if domain in accepted_domains else domain
            if domain:
                external_domains.append(domain)
        total, external = len(recipients), len(external_domains)
        sender_id = owner_ids[event.owner]
        verdict = data.get("verdict", "")
        rows.append(
            (
                tenant_id,
                event.id,
                data["time"],  # the UTC ISO text: COPY takes it as it is, no datetime to format
                sender_id,
                _json(recipients),
                total,
                total - external,
                external,
                _json(sorted(set(external_domains))),
                data.get("subject", ""),
                verdict,
                _json(data.get("urls", [])),
                data.get("size"),
                data.get("client_ip"),
                data.get("internet_message_id", ""),
                data.get("body_hash", ""),
                now,
            )
        )
        key = (sender_id, minute_of(event.time))
        counters = minutes.get(key)
        if counters is None:
            counters = minutes[key] = [0, 0, 0, 0]
        counters[0] += total - external
        counters[1] += external
        counters[2] += total
        counters[3] += verdict in bad_verdicts
    return rows, minutes


def _sign_in_row(tenant_id: int, event: ValidEvent, user_id: int, now: str) -> tuple:
    data = event.data
    return (
        tenant_id,
        event.id,
        user_id,
        data["time"],
        data["ip"],
        data.get("country", ""),
        data.get("client_app", ""),
        data.get("result", ""),
        data.get("user_agent", ""),
        now,
    )


MERGED_FIELDS = ("subject", "internet_message_id", "urls", "client_ip", "size", "body_hash")


def merge_message_details(tenant: Tenant, events: Sequence[Any]) -> int:
    """Add what a second source knows of messages already stored under the same id (e.g. Rspamd's verdict,
    subject and Message-ID for a message the Postfix policy service stored first): the verdict is set when
    given, the other details only where the stored row has none. Returns how many rows changed; one
    ``alerts.evaluate`` follows for their senders (a verdict feeds the sending-pattern detector).

    The ingest ledger keeps the first source's content hash, so a repeated merge is a conflict again and
    merges again, changing nothing the second time. Invalid events are ignored (the caller ingested them
    first and has their errors).
    """
    report = validate_events(
        tenant, [e for e in events if isinstance(e, dict) and e.get("type") == "message"]
    )
    wanted = {e.id: e.data for e in report.events}
    if not wanted:
        return 0
    changed: list[MessageEvent] = []
    bad_moves: list[tuple[int, datetime, int, int, int, int]] = []  # the minute counters' bad messages
    with transaction.atomic():
        rows = MessageEvent.objects.select_for_update().filter(tenant=tenant, event_id__in=list(wanted))
        for row in rows:
            data = wanted[row.event_id]
            fields = []
            if data.get("verdict") and row.verdict != data["verdict"]:
                was_bad = row.verdict in MessageEvent.BAD_VERDICTS
                row.verdict = data["verdict"]
                fields.append("verdict")
                bad_moves.append(
                    (row.sender_id, row.time, 0, 0, 0, (row.verdict in MessageEvent.BAD_VERDICTS) - was_bad)
                )
            for name in MERGED_FIELDS:
                if data.get(name) not in (None, "", []) and getattr(row, name) in (None, "", []):
                    setattr(row, name, data[name])
                    fields.append(name)
            if fields:
                row.save(update_fields=fields)
                changed.append(row)
        count_sent(tenant.pk, (move for move in bad_moves if move[5]))
        if changed:
            times = [row.time for row in changed]
            result = IngestResult(
                accepted=len(changed),
                affected_mailbox_ids={row.sender_id for row in changed},
                time_range=(min(times), max(times)),
            )
            transaction.on_commit(partial(_after_commit, tenant, result))
    return len(changed)
