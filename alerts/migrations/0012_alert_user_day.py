
import django.db.models.deletion
from django.db import migrations, models

from alerts.tallies import REBUILD_USER_DAYS_SQL

TRIGGER_SQL = """
CREATE OR REPLACE FUNCTION alerts_user_day_add(p_tenant bigint, p_mailbox bigint, p_day timestamptz,
                                               p_total integer, p_open integer) RETURNS void LANGUAGE sql AS $$
    INSERT INTO alerts_alertuserday (tenant_id, mailbox_id, day, total, open)
    VALUES (p_tenant, p_mailbox, p_day, p_total, p_open)
    ON CONFLICT (mailbox_id, day) DO UPDATE
    SET total = alerts_alertuserday.total + EXCLUDED.total, open = alerts_alertuserday.open + EXCLUDED.open
$$;

CREATE OR REPLACE FUNCTION alerts_alert_user_day() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_day timestamptz;
    new_day timestamptz;
    old_open integer;
    new_open integer;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        old_day := date_trunc('day', OLD.last_activity_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
        old_open := (OLD.status <> 'resolved')::integer;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_day := date_trunc('day', NEW.last_activity_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
        new_open := (NEW.status <> 'resolved')::integer;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.mailbox_id = NEW.mailbox_id AND old_day = new_day THEN
        IF old_open <> new_open THEN
            PERFORM alerts_user_day_add(NEW.tenant_id, NEW.mailbox_id, new_day, 0, new_open - old_open);
        END IF;
        RETURN NULL;
    END IF;
    -- The smaller key first, as for the tallies: no deadlock between two moves of the same two keys.
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND (OLD.mailbox_id, old_day) < (NEW.mailbox_id, new_day)) THEN
        PERFORM alerts_user_day_add(OLD.tenant_id, OLD.mailbox_id, old_day, -1, -old_open);
        IF TG_OP = 'UPDATE' THEN
            PERFORM alerts_user_day_add(NEW.tenant_id, NEW.mailbox_id, new_day, 1, new_open);
        END IF;
    ELSE
        PERFORM alerts_user_day_add(NEW.tenant_id, NEW.mailbox_id, new_day, 1, new_open);
        IF TG_OP = 'UPDATE' THEN
            PERFORM alerts_user_day_add(OLD.tenant_id, OLD.mailbox_id, old_day, -1, -old_open);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS alerts_alert_user_day ON alerts_alert;
CREATE TRIGGER alerts_alert_user_day
    AFTER INSERT OR DELETE OR UPDATE OF mailbox_id, status, last_activity_at ON alerts_alert
    FOR EACH ROW EXECUTE FUNCTION alerts_alert_user_day();
"""
DROP_TRIGGER_SQL = """
DROP TRIGGER IF EXISTS alerts_alert_user_day ON alerts_alert;
DROP FUNCTION IF EXISTS alerts_alert_user_day();
DROP FUNCTION IF EXISTS alerts_user_day_add(bigint, bigint, timestamptz, integer, integer);
"""


def install_trigger(apps, schema_editor) -> None:
    """PostgreSQL only: the trigger that keeps the per-user days, then those of the alerts already there."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGER_SQL, params=None)
        schema_editor.execute(REBUILD_USER_DAYS_SQL, params=None)


def drop_trigger(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_TRIGGER_SQL, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ('alerts', '0011_console_page_indexes'),
        ('core', '0005_alter_tenant_connector_kind'),
        ('mailboxes', '0006_mailbox_address_index'),
    ]

    operations = [
        migrations.AlterField(
            model_name='alerttally',
            name='tenant',
            field=models.ForeignKey(on_delete=django.db.models.deletion.DB_CASCADE, related_name='+', to='core.tenant'),
        ),
        migrations.CreateModel(
            name='AlertUserDay',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateTimeField()),
                ('total', models.IntegerField(default=0)),
                ('open', models.IntegerField(default=0)),
                ('mailbox', models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='mailboxes.mailbox')),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.DB_CASCADE, related_name='+', to='core.tenant')),
            ],
            options={
                'indexes': [models.Index(fields=['day', '-total'], name='alert_user_day_top_idx')],
                'constraints': [models.UniqueConstraint(fields=('mailbox', 'day'), name='alert_user_day_key')],
            },
        ),
        migrations.RunPython(install_trigger, drop_trigger),
    ]
