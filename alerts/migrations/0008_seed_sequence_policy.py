"""Issue 21: every tenant gets the policy "Suspicious activity after an unusual sign-in" (a tenant created later
gets it from ``alerts.apps.seed_policies_of_new_tenant``), and the sending-pattern policies their new
first-contact threshold at its default."""

from django.db import migrations


def seed(apps, schema_editor):
    from alerts.policies import DEFAULTS_BY_KIND, SENDING_PATTERN, SEQUENCE

    Tenant = apps.get_model("core", "Tenant")
    AlertPolicy = apps.get_model("alerts", "AlertPolicy")
    d = DEFAULTS_BY_KIND[SEQUENCE]
    have = set(AlertPolicy.objects.filter(kind=SEQUENCE).values_list("tenant_id", flat=True))
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
                thresholds={key: t.default for key, t in d.thresholds.items()},
            )
            for tenant in Tenant.objects.exclude(pk__in=have)
        ],
        ignore_conflicts=True,
    )
    pattern = DEFAULTS_BY_KIND[SENDING_PATTERN]
    for policy in AlertPolicy.objects.filter(kind=SENDING_PATTERN):
        if "first_contact_domains" not in policy.thresholds:
            policy.thresholds = {
                **policy.thresholds,
                "first_contact_domains": pattern.thresholds["first_contact_domains"].default,
            }
            policy.description = pattern.description
            policy.save(update_fields=["thresholds", "description"])


def unseed(apps, schema_editor):
    AlertPolicy = apps.get_model("alerts", "AlertPolicy")
    Alert = apps.get_model("alerts", "Alert")
    Alert.objects.filter(policy__kind="sequence").delete()
    AlertPolicy.objects.filter(kind="sequence").delete()


class Migration(migrations.Migration):
    dependencies = [("alerts", "0007_known_contact")]

    operations = [migrations.RunPython(seed, unseed)]
