"""The default tenant exists from the first migrate, so no page creates it on a GET (issue 15, row 8)."""

from django.db import migrations


def create_default_tenant(apps, schema_editor):
    Tenant = apps.get_model("core", "Tenant")
    Tenant.objects.get_or_create(
        slug="default", defaults={"name": "Default organisation", "is_default": True}
    )


class Migration(migrations.Migration):
    dependencies = [("core", "0002_changefeed_outbox")]

    operations = [migrations.RunPython(create_default_tenant, migrations.RunPython.noop)]
