"""Row 6 of issue 15: the audit trail and the change feed are append-only in the database, not only in
Python. On PostgreSQL, raw SQL and the ORM's unguarded paths (``_raw_delete``, a plain manager's
``update()``) are refused by triggers; the sequencer still numbers feed entries once, deleting a user still
clears its audit rows' link, and ``purge_audit_trail`` is the one privileged way to delete. The embedded
SQLite database gets the same triggers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from core.append_only import purge_permit
from core.models import AuditEvent, ChangeFeedEntry
from core.services import publish_change, record_audit, sequence_changes

pytestmark = pytest.mark.django_db


def refused(sql: str, params=()) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as c:
        c.execute(sql, params)


@pytest.fixture
def audit_row(tenant, administrator):
    return record_audit("core.tenant.checked", target=tenant, actor=administrator, after={"x": 1})


@pytest.fixture
def feed_entry(tenant):
    entry = publish_change("test.changed", target=tenant, payload={"x": 1})
    sequence_changes()
    entry.refresh_from_db()
    return entry


def test_raw_sql_cannot_update_or_delete_an_audit_row(audit_row):
    refused("UPDATE core_auditevent SET action = 'forged' WHERE id = %s", [audit_row.pk])
    refused("UPDATE core_auditevent SET actor_label = 'someone-else' WHERE id = %s", [audit_row.pk])
    refused("DELETE FROM core_auditevent WHERE id = %s", [audit_row.pk])
    audit_row.refresh_from_db()
    assert audit_row.action == "core.tenant.checked" and audit_row.actor_label == "ada.admin"


def test_the_orm_unguarded_paths_cannot_change_an_audit_row(audit_row):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent._base_manager.filter(pk=audit_row.pk).update(action="forged")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        rows = AuditEvent._base_manager.filter(pk=audit_row.pk)
        rows._raw_delete(rows.db)
    assert AuditEvent.objects.filter(pk=audit_row.pk, action="core.tenant.checked").exists()


def test_raw_sql_cannot_change_or_delete_a_feed_entry(feed_entry):
    refused("UPDATE core_changefeedentry SET kind = 'forged' WHERE id = %s", [feed_entry.pk])
    refused("UPDATE core_changefeedentry SET payload = '{}' WHERE id = %s", [feed_entry.pk])
    refused("UPDATE core_changefeedentry SET position = position + 1000 WHERE id = %s", [feed_entry.pk])
    refused("UPDATE core_changefeedentry SET position = NULL WHERE id = %s", [feed_entry.pk])
    refused("DELETE FROM core_changefeedentry WHERE id = %s", [feed_entry.pk])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        rows = ChangeFeedEntry._base_manager.filter(pk=feed_entry.pk)
        rows._raw_delete(rows.db)


def test_the_sequencer_still_numbers_each_entry_once(tenant):
    first = publish_change("test.changed", target=tenant, payload={})
    second = publish_change("test.changed", target=tenant, payload={})
    assert sequence_changes() == 2
    positions = list(
        ChangeFeedEntry.objects.filter(pk__in=[first.pk, second.pk])
        .order_by("id")
        .values_list("position", flat=True)
    )
    assert None not in positions and positions[1] == positions[0] + 1
    assert sequence_changes() == 0


def test_deleting_a_user_keeps_their_audit_rows_under_their_name(audit_row, administrator):
    administrator.delete()
    audit_row.refresh_from_db()
    assert audit_row.actor_id is None and audit_row.actor_label == "ada.admin"


def test_clearing_the_actor_cannot_smuggle_another_change(audit_row):
    refused("UPDATE core_auditevent SET actor_id = NULL, action = 'forged' WHERE id = %s", [audit_row.pk])


def test_the_purge_permit_allows_deletes_only_inside_its_block(audit_row):
    with purge_permit(), connection.cursor() as c:
        c.execute("DELETE FROM core_auditevent WHERE id = %s", [audit_row.pk])
    assert not AuditEvent.objects.filter(pk=audit_row.pk).exists()
    other = record_audit("core.tenant.renamed", actor_label="system")
    refused("DELETE FROM core_auditevent WHERE id = %s", [other.pk])


def test_purge_audit_trail_deletes_older_rows_and_audits_itself(tenant):
    old = AuditEvent.objects.create(at=datetime(2024, 1, 1, tzinfo=UTC), actor_label="system", action="old")
    recent = record_audit("core.tenant.checked", actor_label="system")
    call_command("purge_audit_trail", "--before", "2025-01-01", "--actor", "ops@example.com")
    assert not AuditEvent.objects.filter(pk=old.pk).exists()
    assert AuditEvent.objects.filter(pk=recent.pk).exists()
    purge = AuditEvent.objects.get(action="core.audit.purged")
    assert purge.actor_label == "ops@example.com" and purge.after["deleted"] == 1
    refused("DELETE FROM core_auditevent WHERE id = %s", [recent.pk])


def test_purge_audit_trail_refuses_a_future_cut_off(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="future"):
        call_command(
            "purge_audit_trail", "--before", (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
        )


@pytest.mark.django_db(transaction=True)
def test_a_transactional_test_database_still_flushes(tenant):
    # pytest-django empties the tables with TRUNCATE after this test; a row trigger does not fire on it.
    record_audit("core.tenant.checked", actor_label="system")
    assert AuditEvent.objects.count() >= 1


SQLITE_PROBE = textwrap.dedent(
    """
    import django, os
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soc_console.settings")
    django.setup()
    from django.db import DatabaseError, connection, transaction
    from core.append_only import purge_audit_trail
    from core.services import publish_change, record_audit, sequence_changes
    from core.models import Tenant
    from datetime import datetime, UTC
    row = record_audit("probe", actor_label="system")
    entry = publish_change("probe", target=Tenant.objects.default(), payload={})
    sequence_changes()  # (embedded mode's in-process dispatch may have numbered it already)
    entry.refresh_from_db()
    assert entry.position is not None
    for sql in ("UPDATE core_auditevent SET action='x' WHERE id=%s",
                "DELETE FROM core_auditevent WHERE id=%s",
                "UPDATE core_changefeedentry SET position=position+9 WHERE id=%s",
                "DELETE FROM core_changefeedentry WHERE id=%s"):
        try:
            with transaction.atomic(), connection.cursor() as c:
                c.execute(sql, [row.pk if "audit" in sql else entry.pk])
        except DatabaseError as exc:
            assert "append-only" in str(exc), exc
        else:
            raise SystemExit("not refused: " + sql)
    assert purge_audit_trail(datetime(2999, 1, 1, tzinfo=UTC), actor_label="probe") >= 1
    print("sqlite ok")
    """
)


def test_the_embedded_sqlite_database_has_the_same_triggers(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL"}}
    env.update(SQLITE_PATH=str(tmp_path / "embedded.sqlite3"), DEBUG="true", SECURE_SSL_REDIRECT="false")
    run = {"cwd": settings.BASE_DIR, "env": env, "capture_output": True, "text": True, "timeout": 240}
    migrate = subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], **run, check=False)
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    probe = subprocess.run([sys.executable, "-c", SQLITE_PROBE], **run, check=False)  # noqa: S603 - our probe
    assert probe.returncode == 0 and "sqlite ok" in probe.stdout, probe.stderr[-2000:] + probe.stdout
