"""Every tenant has its default alert policies from the migration on (issue 15, row 8): reading the policy
pages, the API or the schema never creates them. A tenant created later gets them from
``alerts.apps.seed_policies_of_new_tenant``."""

from django.db import migrations


def seed_default_policies(apps, schema_editor):
    from alerts.policies import DEFAULT_POLICIES

    Tenant = apps.get_model("core", "Tenant")
    AlertPolicy = apps.get_model("alerts", "AlertPolicy")
    for tenant in Tenant.objects.all():
        have = set(AlertPolicy.objects.filter(tenant=tenant).values_list("kind", flat=True))
        AlertPolicy.objects.bulk_create(
            [
                AlertPolicy(
                    tenant=tenant,
                    kind=d.kind,
                    name=d.name,
                    description=d.description,
                    severity=d.severity,
                    category=d.category,
                    action=d.action,
                    investigate_mode=d.investigate,
                    rerestrict_after_release=getattr(d, "rerestrict_after_release", False),
                    thresholds={key: t.default for key, t in d.thresholds.items()},
                )
                for d in DEFAULT_POLICIES
                if d.kind not in have
            ],
            ignore_conflicts=True,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0003_alert_recent_index"),
        ("core", "0003_default_tenant"),
    ]

    operations = [migrations.RunPython(seed_default_policies, migrations.RunPython.noop)]
