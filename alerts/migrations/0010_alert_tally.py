import django.db.models.deletion
from django.db import migrations, models

from alerts.tallies import REBUILD_SQL

TRIGGER_SQL = """
CREATE OR REPLACE FUNCTION alerts_tally_add(tenant bigint, hour timestamptz, status text, severity text,
                                            delta integer) RETURNS void LANGUAGE sql AS $$
    INSERT INTO alerts_alerttally (tenant_id, hour, status, severity, count)
    VALUES (tenant, hour, status, severity, delta)
    ON CONFLICT (tenant_id, hour, status, severity) DO UPDATE SET count = alerts_alerttally.count + delta
$$;

CREATE OR REPLACE FUNCTION alerts_alert_tally() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_hour timestamptz;
    new_hour timestamptz;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        old_hour := date_trunc('hour', OLD.first_activity_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_hour := date_trunc('hour', NEW.first_activity_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.tenant_id = NEW.tenant_id AND old_hour = new_hour AND OLD.status = NEW.status
            AND OLD.severity = NEW.severity THEN
        RETURN NULL;
    END IF;
    -- The smaller key first: two transactions moving alerts between the same two keys lock them in one order
    -- and cannot deadlock.
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND (OLD.tenant_id, old_hour, OLD.status, OLD.severity)
                                               < (NEW.tenant_id, new_hour, NEW.status, NEW.severity)) THEN
        PERFORM alerts_tally_add(OLD.tenant_id, old_hour, OLD.status, OLD.severity, -1);
        IF TG_OP = 'UPDATE' THEN
            PERFORM alerts_tally_add(NEW.tenant_id, new_hour, NEW.status, NEW.severity, 1);
        END IF;
    ELSE
        PERFORM alerts_tally_add(NEW.tenant_id, new_hour, NEW.status, NEW.severity, 1);
        IF TG_OP = 'UPDATE' THEN
            PERFORM alerts_tally_add(OLD.tenant_id, old_hour, OLD.status, OLD.severity, -1);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS alerts_alert_tally ON alerts_alert;
CREATE TRIGGER alerts_alert_tally
    AFTER INSERT OR DELETE OR UPDATE OF tenant_id, status, severity, first_activity_at ON alerts_alert
    FOR EACH ROW EXECUTE FUNCTION alerts_alert_tally();
"""
DROP_TRIGGER_SQL = """
DROP TRIGGER IF EXISTS alerts_alert_tally ON alerts_alert;
DROP FUNCTION IF EXISTS alerts_alert_tally();
DROP FUNCTION IF EXISTS alerts_tally_add(bigint, timestamptz, text, text, integer);
"""


def install_trigger(apps, schema_editor) -> None:
    """PostgreSQL only: the trigger that keeps the tallies, then the tallies of the alerts already there."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGER_SQL, params=None)
        schema_editor.execute(REBUILD_SQL, params=None)


def drop_trigger(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_TRIGGER_SQL, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ('alerts', '0009_alert_first_activity_index'),
        ('core', '0005_alter_tenant_connector_kind'),
    ]

    operations = [
        migrations.CreateModel(
            name='AlertTally',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('status', models.CharField(choices=[('new', 'New'), ('in_progress', 'In progress'), ('resolved', 'Resolved')], max_length=16)),
                ('severity', models.CharField(choices=[('high', 'High'), ('medium', 'Medium'), ('low', 'Low'), ('informational', 'Informational')], max_length=16)),
                ('hour', models.DateTimeField()),
                ('count', models.IntegerField(default=0)),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='core.tenant')),
            ],
            options={
                'indexes': [models.Index(fields=['hour'], name='alert_tally_hour_idx')],
                'constraints': [models.UniqueConstraint(fields=('tenant', 'hour', 'status', 'severity'), name='alert_tally_key')],
            },
        ),
        migrations.RunPython(install_trigger, drop_trigger),
    ]
