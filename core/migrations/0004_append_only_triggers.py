"""The audit trail and the change feed are append-only in the database too (issue 15, row 6).

Triggers refuse UPDATE and DELETE on ``core_auditevent`` and ``core_changefeedentry``, whatever the client
(the ORM's ``update()`` / ``_raw_delete()``, raw SQL, a psql session of the application's role). Allowed:

* the feed sequencer giving an entry its position once (``position`` NULL -> a number, nothing else changes);
* deleting a user account, which clears ``actor_id`` on its audit rows (``actor_label`` keeps the name);
* DELETE inside a transaction that set the purge permit: on PostgreSQL ``SET LOCAL soc.allow_purge = 'on'``,
  on SQLite a row in ``soc_purge_permit``; only ``core.append_only.purge_permit()`` (used by the documented
  ``purge_audit_trail`` command) sets it.

TRUNCATE fires no row trigger: it is how test databases are flushed, and it needs the table owner anyway.
"""

from django.db import migrations

TABLES = ("core_auditevent", "core_changefeedentry")

# One function per table: PL/pgSQL resolves NEW.<column> even in a branch that is not taken.
_DELETE_CHECK = """
    IF TG_OP = 'DELETE' THEN
        IF current_setting('soc.allow_purge', true) = 'on' THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION '% is append-only: DELETE refused (purge with manage.py purge_audit_trail)',
            TG_TABLE_NAME;
    END IF;
"""
POSTGRES_FORWARD = f"""
CREATE OR REPLACE FUNCTION soc_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_DELETE_CHECK}
    IF OLD.actor_id IS NOT NULL AND NEW.actor_id IS NULL
            AND (to_jsonb(NEW) - 'actor_id') = (to_jsonb(OLD) - 'actor_id') THEN
        RETURN NEW;  -- the actor's account was deleted; actor_label keeps who it was
    END IF;
    RAISE EXCEPTION '% is append-only: UPDATE refused', TG_TABLE_NAME;
END;
$$;
CREATE OR REPLACE FUNCTION soc_feed_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_DELETE_CHECK}
    IF OLD.position IS NULL AND NEW.position IS NOT NULL
            AND (to_jsonb(NEW) - 'position') = (to_jsonb(OLD) - 'position') THEN
        RETURN NEW;  -- the sequencer numbers an entry once
    END IF;
    RAISE EXCEPTION '% is append-only: UPDATE refused', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER soc_append_only BEFORE UPDATE OR DELETE ON core_auditevent
    FOR EACH ROW EXECUTE FUNCTION soc_audit_append_only();
CREATE TRIGGER soc_append_only BEFORE UPDATE OR DELETE ON core_changefeedentry
    FOR EACH ROW EXECUTE FUNCTION soc_feed_append_only();
"""

POSTGRES_BACKWARD = """
DROP TRIGGER IF EXISTS soc_append_only ON core_auditevent;
DROP TRIGGER IF EXISTS soc_append_only ON core_changefeedentry;
DROP FUNCTION IF EXISTS soc_audit_append_only();
DROP FUNCTION IF EXISTS soc_feed_append_only();
"""

# SQLite has no session variables and no row-to-JSON: the permit is a row in a table, and the columns that
# may never change are listed (UPDATE OF fires when a listed column is assigned, changed or not).
_AUDIT_FIXED = "at, actor_label, action, tenant_id, target_type, target_id, target_repr, before, after, request_id, comment"
_FEED_FIXED = "kind, tenant_id, target_type, target_id, payload, at"
_NO_PERMIT = "NOT EXISTS (SELECT 1 FROM soc_purge_permit)"
SQLITE_FORWARD = [
    "CREATE TABLE IF NOT EXISTS soc_purge_permit (granted integer NOT NULL)",
    f"""CREATE TRIGGER soc_audit_no_delete BEFORE DELETE ON core_auditevent WHEN {_NO_PERMIT}
        BEGIN SELECT RAISE(ABORT, 'core_auditevent is append-only: DELETE refused'); END""",
    f"""CREATE TRIGGER soc_audit_no_update BEFORE UPDATE OF id, {_AUDIT_FIXED} ON core_auditevent
        BEGIN SELECT RAISE(ABORT, 'core_auditevent is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER soc_audit_actor_only_cleared BEFORE UPDATE OF actor_id ON core_auditevent
        WHEN NEW.actor_id IS NOT NULL
        BEGIN SELECT RAISE(ABORT, 'core_auditevent is append-only: UPDATE refused'); END""",
    f"""CREATE TRIGGER soc_feed_no_delete BEFORE DELETE ON core_changefeedentry WHEN {_NO_PERMIT}
        BEGIN SELECT RAISE(ABORT, 'core_changefeedentry is append-only: DELETE refused'); END""",
    f"""CREATE TRIGGER soc_feed_no_update BEFORE UPDATE OF id, {_FEED_FIXED} ON core_changefeedentry
        BEGIN SELECT RAISE(ABORT, 'core_changefeedentry is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER soc_feed_position_once BEFORE UPDATE OF position ON core_changefeedentry
        WHEN OLD.position IS NOT NULL OR NEW.position IS NULL
        BEGIN SELECT RAISE(ABORT, 'core_changefeedentry is append-only: UPDATE refused'); END""",
]
SQLITE_BACKWARD = [
    *(
        f"DROP TRIGGER IF EXISTS {name}"
        for name in (
            "soc_audit_no_delete",
            "soc_audit_no_update",
            "soc_audit_actor_only_cleared",
            "soc_feed_no_delete",
            "soc_feed_no_update",
            "soc_feed_position_once",
        )
    ),
    "DROP TABLE IF EXISTS soc_purge_permit",
]


def forward(apps, schema_editor):
    _run(schema_editor, POSTGRES_FORWARD, SQLITE_FORWARD)


def backward(apps, schema_editor):
    _run(schema_editor, POSTGRES_BACKWARD, SQLITE_BACKWARD)


def _run(schema_editor, postgres: str, sqlite: list[str]) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(postgres, params=None)
    elif vendor == "sqlite":
        for statement in sqlite:
            schema_editor.execute(statement, params=None)
    else:
        raise NotImplementedError(f"append-only triggers are written for PostgreSQL and SQLite, not {vendor}")


class Migration(migrations.Migration):
    dependencies = [("core", "0003_default_tenant")]

    operations = [migrations.RunPython(forward, backward)]
