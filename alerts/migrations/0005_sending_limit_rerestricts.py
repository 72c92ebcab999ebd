"""The sending-limit policy re-restricts after a release by default (issue 14): a released user who breaches the
limit again the same day is restricted again; the release cap still applies. Existing sending-limit policies
still on the old default (off) are switched on; the change is reversible."""

from django.db import migrations


def switch_on(apps, schema_editor):
    AlertPolicy = apps.get_model("alerts", "AlertPolicy")
    AlertPolicy.objects.filter(kind="sending_limit", rerestrict_after_release=False).update(
        rerestrict_after_release=True
    )


def switch_off(apps, schema_editor):
    AlertPolicy = apps.get_model("alerts", "AlertPolicy")
    AlertPolicy.objects.filter(kind="sending_limit").update(rerestrict_after_release=False)


class Migration(migrations.Migration):
    dependencies = [("alerts", "0004_seed_default_policies")]

    operations = [migrations.RunPython(switch_on, switch_off)]
