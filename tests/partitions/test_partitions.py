"""Time-partitioned telemetry on PostgreSQL (issue 17): partitions made ahead by beat, ingest whatever beat
did, queries across partitions, dedup across partitions, retention by whole partitions with the guarded rows
kept and readable, and the migration of a table that holds rows."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import time_machine
from django.conf import settings as django_settings
from django.db import IntegrityError, connection, transaction

from alerts.models import AlertPolicy
from core.models import AuditEvent
from core.partitions import is_partitioned, partition_table, range_partitions, unpartition_table
from core.retention import ensure_partitions, purge_expired
from core.tasks import beat_ensure_partitions
from investigations.models import Investigation
from mailboxes.models import DirectoryChange, SignIn
from mailflow.ingest import ingest_events
from mailflow.models import IngestedEvent, MessageEvent
from tests.alerts.builders import NOW, Telemetry, alert_citing, mailbox_of
from tests.investigations.action_builders import make_investigation

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="partitions are PostgreSQL's"),
]

ALICE = "alice@contoso.example"
BOB = "bob@contoso.example"
MESSAGES = MessageEvent._meta.db_table
LEDGER = IngestedEvent._meta.db_table
OLD = NOW - timedelta(days=45)


@pytest.fixture(autouse=True)
def frozen(settings):
    settings.RETENTION_DAYS = 30
    settings.RETENTION_DAYS_PER_TABLE = dict.fromkeys(django_settings.RETENTION_TABLES, 30)
    settings.TELEMETRY_PARTITIONS_AHEAD_DAYS = 7
    with time_machine.travel(NOW, tick=False):
        yield


def partitions_of(table: str) -> list[date]:
    """The first days of ``table``'s range partitions around the frozen clock (the migration made some at
    the real date too)."""
    return sorted(day for day in range_partitions(table) if day.year >= NOW.year - 1)


def partition_of(model, event_id: str) -> str:
    """The partition that holds the row of ``event_id``."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text FROM {model._meta.db_table} WHERE event_id = %s",  # noqa: S608
            [event_id],
        )
        return cursor.fetchone()[0]


def settle_foreign_keys() -> None:
    """Run the deferred foreign-key checks of the rows this test wrote: PostgreSQL alters no table with
    checks pending, and a test is one transaction (beat's and the migration's writes were committed)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_beat_creates_the_partitions_of_the_window_and_the_week_ahead_once(tenant):
    beat_ensure_partitions.delay()  # in-process here; routed to the beat queue in production

    # NOW is 2031-03-04 18:00; the 30-day window starts 2031-02-02 18:00, in the partition of 2 February.
    days = partitions_of(MESSAGES)
    assert (days[0], days[-1], len(days)) == (date(2031, 2, 2), date(2031, 3, 11), 38)
    assert partitions_of(SignIn._meta.db_table) == days
    assert partitions_of(DirectoryChange._meta.db_table) == days
    # The ledger is weekly, from the Monday of the window's first week.
    weeks = partitions_of(LEDGER)
    assert weeks == [date(2031, 2, 2) - timedelta(days=6) + timedelta(weeks=n) for n in range(7)]
    assert all(week.weekday() == 0 for week in weeks)

    assert ensure_partitions() == []  # idempotent
    assert partitions_of(MESSAGES) == days


def test_ingest_before_beat_lands_in_the_default_partition_and_moves_when_its_partition_is_made(tenant):
    t = Telemetry(tenant)
    t.mailbox(ALICE, at=NOW - timedelta(days=1))
    message = t.message(ALICE, at=NOW, external=2)
    t.ingest()  # no partition of 2031 exists yet
    assert partition_of(MessageEvent, message) == f"{MESSAGES}_default"
    assert partition_of(IngestedEvent, message) == f"{LEDGER}_default"

    created = ensure_partitions()

    assert f"{MESSAGES}_p{NOW:%Y%m%d}" in created
    assert partition_of(MessageEvent, message) == f"{MESSAGES}_p{NOW:%Y%m%d}"
    assert partition_of(IngestedEvent, message) == f"{LEDGER}_p{NOW - timedelta(days=NOW.weekday()):%Y%m%d}"
    assert MessageEvent.objects.get(event_id=message).external_count == 2
    again = Telemetry(tenant)
    again.message(ALICE, at=NOW, external=2, event_id=message)
    assert ingest_events(tenant, again.events).duplicates == 1


def test_a_query_reads_across_partitions_in_time_order(tenant):
    ensure_partitions()
    t = Telemetry(tenant)
    t.mailbox(ALICE, at=NOW - timedelta(days=10))
    ids = t.messages(ALICE, [NOW - timedelta(days=d, hours=1) for d in (0, 1, 2, 5)], external=1)
    t.ingest()

    assert len({partition_of(MessageEvent, event_id) for event_id in ids}) == 4
    window = MessageEvent.objects.for_tenant(tenant).between(NOW - timedelta(days=3), NOW)
    assert list(window.values_list("event_id", flat=True)) == ids[:3]  # newest first, across three days
    assert MessageEvent.objects.sent_by(mailbox_of(tenant, ALICE)).count() == 4


def test_an_id_sent_again_with_another_time_is_a_conflict_even_in_another_partition(tenant):
    ensure_partitions()
    t = Telemetry(tenant)
    t.mailbox(ALICE, at=NOW - timedelta(days=10))
    first = t.message(ALICE, at=NOW - timedelta(days=4), external=1, event_id="m-1")
    t.ingest()

    moved = Telemetry(tenant)
    moved.message(ALICE, at=NOW - timedelta(days=1), external=1, event_id="m-1")
    same = Telemetry(tenant)
    same.message(ALICE, at=NOW - timedelta(days=4), external=1, event_id="m-1")

    assert ingest_events(tenant, moved.events).conflicts == [first]
    assert ingest_events(tenant, same.events).duplicates == 1
    assert MessageEvent.objects.filter(event_id=first).count() == 1
    assert IngestedEvent.objects.filter(event_id=first).count() == 1


def old_telemetry(tenant) -> dict[str, str]:
    """Alice's and Bob's telemetry of one day 45 days ago, in partitions made for it then."""
    with time_machine.travel(OLD, tick=False):
        ensure_partitions()
    t = Telemetry(tenant)
    ids = {
        "alice_mailbox": t.mailbox(ALICE, at=OLD - timedelta(days=1)),
        "bob_mailbox": t.mailbox(BOB, at=OLD - timedelta(days=1)),
        "evidence": t.message(ALICE, at=OLD, external=3),
        "plain": t.message(ALICE, at=OLD + timedelta(hours=1), external=1),
        "sign_in": t.sign_in(ALICE, at=OLD, ip="198.51.100.7", country="FR"),
        "investigated": t.message(BOB, at=OLD, external=1),
        "investigated_sign_in": t.sign_in(BOB, at=OLD, ip="198.51.100.8", country="NL"),
    }
    t.ingest()
    return ids


def test_retention_drops_whole_partitions_and_keeps_guarded_rows_readable(tenant):
    ids = old_telemetry(tenant)
    old_day = OLD.date()
    assert partition_of(MessageEvent, ids["plain"]) == f"{MESSAGES}_p{old_day:%Y%m%d}"
    alert_citing(
        tenant, ALICE, AlertPolicy.Kind.SENDING_PATTERN, event_kind="message", event_id=ids["evidence"]
    )
    make_investigation(mailbox_of(tenant, BOB), status=Investigation.Status.PENDING_ACTION)
    ensure_partitions()
    settle_foreign_keys()

    assert purge_expired(dry_run=True)[tenant.slug]["messages"] == 1
    assert old_day in range_partitions(MESSAGES)  # a dry run drops nothing

    purged = purge_expired()[tenant.slug]

    # Bob's mailbox event (a directory change) is his telemetry too, kept for the open investigation.
    assert (purged["messages"], purged["sign_ins"], purged["directory_changes"]) == (1, 1, 1)
    assert purged["ingest_ledger"] == 3  # Alice's mailbox event, plain message and sign-in
    assert old_day not in range_partitions(MESSAGES)
    assert old_day not in range_partitions(SignIn._meta.db_table)
    kept = set(MessageEvent.objects.filter(tenant=tenant).values_list("event_id", flat=True))
    assert kept == {ids["evidence"], ids["investigated"]}
    assert set(SignIn.objects.values_list("event_id", flat=True)) == {ids["investigated_sign_in"]}
    assert partition_of(MessageEvent, ids["evidence"]) == f"{MESSAGES}_default"
    assert MessageEvent.objects.get(event_id=ids["evidence"]).external_count == 3
    assert set(IngestedEvent.objects.values_list("event_id", flat=True)) == {
        ids["evidence"],
        ids["investigated"],
        ids["investigated_sign_in"],
        ids["bob_mailbox"],
    }
    audit = AuditEvent.objects.get(action="core.retention.purged")
    assert audit.after["rows"]["messages"] == 1

    # The kept event is still recognised; the purged one is new again.
    again = Telemetry(tenant)
    again.message(ALICE, at=OLD, external=3, event_id=ids["evidence"])
    again.message(ALICE, at=OLD + timedelta(hours=1), external=1, event_id=ids["plain"])
    result = ingest_events(tenant, again.events)
    assert (result.accepted, result.duplicates, result.conflicts) == (1, 1, [])


def test_rows_of_a_partition_not_wholly_past_the_window_wait_for_it(tenant):
    # The window starts at 2031-02-02 18:00: the rows of that morning wait until the whole day is past.
    morning = NOW - timedelta(days=30, hours=10)
    ensure_partitions()
    t = Telemetry(tenant)
    t.mailbox(ALICE, at=morning - timedelta(days=1))
    message = t.message(ALICE, at=morning, external=1)
    t.ingest()
    settle_foreign_keys()

    assert purge_expired()[tenant.slug]["messages"] == 0
    with time_machine.travel(NOW + timedelta(hours=8), tick=False):
        assert purge_expired()[tenant.slug]["messages"] == 1
    assert not MessageEvent.objects.filter(event_id=message).exists()


def test_the_migration_partitions_a_table_that_holds_rows(tenant):
    unpartition_table(MESSAGES)
    assert not is_partitioned(MESSAGES)
    t = Telemetry(tenant)
    t.mailbox(ALICE, at=NOW - timedelta(days=90))
    ids = t.messages(ALICE, [NOW - timedelta(days=d) for d in (60, 29, 1, 0)], external=1)
    t.ingest()
    before = list(MessageEvent.objects.order_by("pk").values_list("pk", "event_id", "time", "external_count"))
    settle_foreign_keys()

    partition_table(MESSAGES, "time", 1, back_days=30, ahead_days=7)

    assert is_partitioned(MESSAGES)
    assert list(
        MessageEvent.objects.order_by("pk").values_list("pk", "event_id", "time", "external_count")
    ) == (before)
    assert partition_of(MessageEvent, ids[0]) == f"{MESSAGES}_default"  # older than the window
    assert partition_of(MessageEvent, ids[1]) == f"{MESSAGES}_p{NOW - timedelta(days=29):%Y%m%d}"
    assert len(partitions_of(MESSAGES)) == 30 + 1 + 7  # the window, today and 7 days ahead
    row = MessageEvent.objects.get(event_id=ids[3])
    with pytest.raises(IntegrityError), transaction.atomic():  # the unique key survived
        MessageEvent.objects.create(tenant=tenant, event_id=row.event_id, time=row.time, sender=row.sender)
    fresh = MessageEvent.objects.create(tenant=tenant, event_id="new", time=NOW, sender=row.sender)
    assert fresh.pk > max(pk for pk, *_ in before)  # the identity sequence carried on
