"""Telemetry retention (DESIGN section 11): old rows purged per table; evidence, open investigations kept."""

from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from alerts.models import AlertPolicy
from core.models import AuditEvent
from core.retention import purge_expired, retention_days
from core.tasks import beat_purge_telemetry
from investigations.models import Investigation
from m365.models import M365Connection, PullRun
from m365.services import connect_tenant
from mailboxes.models import DirectoryChange, SignIn
from mailflow.ingest import ingest_events
from mailflow.models import IngestedEvent, MessageEvent
from tests.alerts.builders import NOW, Telemetry, alert_citing, mailbox_of
from tests.builders import frozen_at
from tests.investigations.action_builders import make_investigation

pytestmark = pytest.mark.django_db

ALICE = "alice@contoso.example"
BOB = "bob@contoso.example"
OLD = NOW - timedelta(days=45)
RECENT = NOW - timedelta(days=3)


frozen = frozen_at(NOW)


@pytest.fixture
def windows(settings):
    """Set table windows (days) on top of the 30-day default."""

    def set_(**days: int) -> None:
        settings.RETENTION_DAYS_PER_TABLE = {**django_settings.RETENTION_DAYS_PER_TABLE, **days}

    settings.RETENTION_DAYS = 30
    set_(**dict.fromkeys(django_settings.RETENTION_TABLES, 30))
    return set_


def telemetry_of(tenant, at) -> dict[str, str]:
    """One event of each telemetry kind for Alice at ``at``; their ids by kind."""
    t = Telemetry(tenant)
    tag = uuid.uuid4().hex[:8]
    ids = {
        "mailbox": t.mailbox(ALICE, at=at - timedelta(days=1), event_id=f"mbx-{tag}"),
        "message": t.message(ALICE, at=at, external=2, event_id=f"msg-{tag}"),
        "inbox_rule": t.inbox_rule(
            ALICE, at=at, actions={"move_to_folder": "Archive"}, rule_id=f"r-{tag}", event_id=f"rule-{tag}"
        ),
        "sign_in": t.sign_in(ALICE, at=at, ip="198.51.100.7", country="FR", event_id=f"si-{tag}"),
    }
    t.ingest()
    return ids


def rows(tenant) -> dict[str, int]:
    return {
        "messages": MessageEvent.objects.filter(tenant=tenant).count(),
        "sign_ins": SignIn.objects.filter(tenant=tenant).count(),
        "directory_changes": DirectoryChange.objects.filter(tenant=tenant).count(),
        "ingest_ledger": IngestedEvent.objects.filter(tenant=tenant).count(),
    }


def test_rows_past_the_window_are_purged_and_recent_ones_kept(tenant, windows):
    telemetry_of(tenant, OLD)
    recent = telemetry_of(tenant, RECENT)
    before = rows(tenant)

    purged = purge_expired()

    # The old mailbox event (a directory change and a ledger row) goes too; the mailbox itself stays.
    assert purged[tenant.slug] == {
        "directory_changes": 2,
        "ingest_ledger": 4,
        "m365_pull_runs": 0,
        "messages": 1,
        "sending_minutes": 1,  # the old message's minute counter goes with it
        "sign_ins": 1,
    }
    assert rows(tenant) == {
        "messages": before["messages"] - 1,
        "sign_ins": before["sign_ins"] - 1,
        "directory_changes": before["directory_changes"] - 2,
        "ingest_ledger": before["ingest_ledger"] - 4,
    }
    assert MessageEvent.objects.get(tenant=tenant).event_id == recent["message"]
    assert mailbox_of(tenant, ALICE).inbox_rules.count() == 2  # current state is not telemetry
    audit = AuditEvent.objects.get(action="core.retention.purged")
    assert audit.tenant == tenant
    assert audit.after["rows"]["messages"] == 1
    assert audit.after["days"]["messages"] == 30
    assert purge_expired()[tenant.slug] == dict.fromkeys(purged[tenant.slug], 0)  # nothing left: no-op
    assert AuditEvent.objects.filter(action="core.retention.purged").count() == 1


def test_the_events_behind_an_alert_are_kept_in_their_tenant_only(tenant, other_tenant, windows):
    other = other_tenant
    ids = telemetry_of(tenant, OLD)
    telemetry_of(other, OLD)
    # The other tenant holds a message with the same id as ours, which no alert of its own keeps.
    shared = Telemetry(other)
    shared.message(BOB, at=OLD, external=1, event_id=ids["message"])
    shared.ingest()
    alert_citing(
        tenant, ALICE, AlertPolicy.Kind.SENDING_PATTERN, event_kind="message", event_id=ids["message"]
    )
    alert_citing(tenant, ALICE, AlertPolicy.Kind.FORWARDING, event_kind="sign_in", event_id=ids["sign_in"])

    purge_expired()

    assert list(MessageEvent.objects.filter(tenant=tenant).values_list("event_id", flat=True)) == [
        ids["message"]
    ]
    assert list(SignIn.objects.filter(tenant=tenant).values_list("event_id", flat=True)) == [ids["sign_in"]]
    assert set(IngestedEvent.objects.filter(tenant=tenant).values_list("event_id", flat=True)) == {
        ids["message"],
        ids["sign_in"],
    }
    assert not MessageEvent.objects.filter(tenant=other).exists()
    # Re-sending the kept event is still recognised as a duplicate (its ledger row was kept with it).
    again = Telemetry(tenant)
    again.message(ALICE, at=OLD, external=2, event_id=ids["message"])
    result = ingest_events(tenant, again.events)
    assert (result.accepted, result.duplicates, result.errors) == (0, 1, [])


def test_an_open_investigation_keeps_its_mailboxs_telemetry_until_it_closes(tenant, windows):
    ids = telemetry_of(tenant, OLD)
    investigation = make_investigation(mailbox_of(tenant, ALICE), status=Investigation.Status.PENDING_ACTION)

    purge_expired()
    assert rows(tenant) == {"messages": 1, "sign_ins": 1, "directory_changes": 2, "ingest_ledger": 4}
    again = Telemetry(tenant)
    again.message(ALICE, at=OLD, external=2, event_id=ids["message"])
    assert ingest_events(tenant, again.events).duplicates == 1

    Investigation.objects.filter(pk=investigation.pk).update(status=Investigation.Status.REMEDIATED)
    purge_expired()
    assert rows(tenant) == dict.fromkeys(rows(tenant), 0)


def test_a_purged_event_sent_again_is_stored_again_without_a_conflict(tenant, windows):
    ids = telemetry_of(tenant, OLD)
    purge_expired()
    again = Telemetry(tenant)
    again.message(ALICE, at=OLD, external=2, event_id=ids["message"])
    result = ingest_events(tenant, again.events)
    assert (result.accepted, result.duplicates, result.conflicts, result.errors) == (1, 0, [], [])
    purge_expired()
    assert not MessageEvent.objects.filter(tenant=tenant).exists()


def test_each_table_has_its_own_window_and_the_ledger_keeps_what_is_stored(tenant, windows):
    ids = telemetry_of(tenant, OLD)  # 45 days old
    windows(messages=60, sign_ins=0, directory_changes=10, ingest_ledger=7)
    assert retention_days("sign_ins") == 0

    purged = purge_expired()[tenant.slug]
    assert "sign_ins" not in purged  # kept forever: not even looked at
    assert rows(tenant) == {"messages": 1, "sign_ins": 1, "directory_changes": 0, "ingest_ledger": 2}
    assert set(IngestedEvent.objects.values_list("event_id", flat=True)) == {ids["message"], ids["sign_in"]}


def test_small_batches_delete_everything_and_a_dry_run_deletes_nothing(tenant, windows):
    t = Telemetry(tenant)
    t.mailbox(ALICE, at=OLD - timedelta(days=1))
    t.messages(ALICE, [OLD + timedelta(minutes=i) for i in range(7)], external=1)
    t.ingest()

    assert purge_expired(dry_run=True)[tenant.slug]["messages"] == 7
    assert rows(tenant)["messages"] == 7
    assert not AuditEvent.objects.filter(action="core.retention.purged").exists()

    assert purge_expired(batch_size=2)[tenant.slug]["messages"] == 7
    assert rows(tenant)["messages"] == 0


def test_old_microsoft_365_pull_runs_are_purged(tenant, windows):
    connection = connect_tenant(
        actor=None,
        name="Contoso 365",
        directory_id=str(uuid.uuid4()),
        client_id=str(uuid.uuid4()),
        credential_type=M365Connection.Credential.SECRET,
        secret="not-a-real-secret-value",
    )
    PullRun.objects.create(connection=connection, source="sign_ins", started_at=OLD)
    recent = PullRun.objects.create(connection=connection, source="sign_ins", started_at=RECENT)

    assert purge_expired()[connection.tenant.slug]["m365_pull_runs"] == 1
    assert list(PullRun.objects.all()) == [recent]


def test_the_command_reports_windows_and_counts_and_beat_runs_the_purge_hourly(tenant, windows):
    telemetry_of(tenant, OLD)
    out = StringIO()
    call_command("purge_telemetry", "--dry-run", stdout=out)
    assert "messages: 30 days" in out.getvalue()
    assert f"tenant {tenant.slug}: would delete" in out.getvalue()
    assert "messages 1" in out.getvalue()
    assert rows(tenant)["messages"] == 1

    schedule = django_settings.CELERY_BEAT_SCHEDULE["core.beat_purge_telemetry"]
    assert schedule == {"task": "core.beat_purge_telemetry", "schedule": 3600.0}
    beat_purge_telemetry.delay()  # in-process here; routed to the beat queue in production
    assert rows(tenant)["messages"] == 0
