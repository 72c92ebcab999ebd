"""Correlation: a user's alerts, restrictions and investigations join one incident; a resolved incident
reopens for evidence within the reopen window and not after; redeliveries add nothing; two alerts of one user
correlating at once open one incident; severity follows the highest alert."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertPolicy
from core.models import AuditEvent, ChangeFeedEntry
from incidents import services
from incidents.models import Incident, IncidentAlert
from restricted_users.services import restrict_user
from tests.builders.threads import run_together

from .builders import alert_in_incident, incident_of, make_alert, make_mailbox

pytestmark = pytest.mark.django_db
K = AlertPolicy.Kind


@pytest.fixture
def alice(tenant):
    return make_mailbox(tenant, "alice@contoso.example")


def test_a_new_alert_opens_an_incident_titled_after_it(tenant, alice, run_on_commit):
    alert = alert_in_incident(run_on_commit, tenant, alice)

    incident = incident_of(alert)
    assert incident.title == "Suspicious email forwarding activity involving alice@contoso.example"
    assert incident.status == Incident.Status.ACTIVE
    assert incident.severity == alert.severity
    assert incident.first_activity_at == alert.first_activity_at
    assert AuditEvent.objects.filter(action="incidents.incident.created", target_id=str(incident.pk)).exists()
    assert ChangeFeedEntry.objects.filter(kind="incident.created", target_id=str(incident.pk)).count() == 1


def test_a_second_alert_of_the_user_joins_the_open_incident(tenant, alice, run_on_commit):
    first = alert_in_incident(run_on_commit, tenant, alice, K.FORWARDING)
    second = alert_in_incident(run_on_commit, tenant, alice, K.INBOX_MANIPULATION)

    assert incident_of(first) == incident_of(second)
    assert Incident.objects.count() == 1
    assert AuditEvent.objects.filter(action="incidents.incident.alert_added").count() == 1


def test_another_users_alert_opens_their_own_incident(tenant, alice, run_on_commit):
    bob = make_mailbox(tenant, "bob@contoso.example")
    mine = alert_in_incident(run_on_commit, tenant, alice)
    theirs = alert_in_incident(run_on_commit, tenant, bob)
    assert incident_of(mine) != incident_of(theirs)


def test_severity_follows_the_highest_alert(tenant, alice, run_on_commit):
    low = alert_in_incident(run_on_commit, tenant, alice, K.SIGN_IN)
    low.refresh_from_db()
    Alert.objects.filter(pk=low.pk).update(severity="low")
    services.correlate_alert(low.pk)
    assert incident_of(low).severity == "low"

    high = alert_in_incident(run_on_commit, tenant, alice, K.FORWARDING)
    assert high.severity == "high"
    assert incident_of(low).severity == "high"


def test_a_fold_extends_the_incidents_last_activity(tenant, alice, run_on_commit):
    start = timezone.now() - timedelta(hours=2)
    alert = alert_in_incident(run_on_commit, tenant, alice, at=start)
    later = alert_in_incident(run_on_commit, tenant, alice, at=start + timedelta(minutes=30))
    assert later.pk == alert.pk  # folded into the same alert
    incident = incident_of(alert)
    assert incident.last_activity_at >= start + timedelta(minutes=30)
    assert incident.first_activity_at == start


def test_a_redelivered_correlation_adds_nothing(tenant, alice, run_on_commit):
    alert = alert_in_incident(run_on_commit, tenant, alice)
    audits, feed = AuditEvent.objects.count(), ChangeFeedEntry.objects.count()

    again = services.correlate_alert(alert.pk)

    assert again == incident_of(alert)
    assert IncidentAlert.objects.count() == 1
    assert (AuditEvent.objects.count(), ChangeFeedEntry.objects.count()) == (audits, feed)


def test_an_unknown_alert_correlates_to_nothing(db):
    assert services.correlate_alert(987654) is None
    assert services.correlate_restriction(987654) is None
    assert services.correlate_investigation(987654) is None


def test_a_resolved_incident_reopens_for_evidence_within_the_window(
    tenant, alice, operator, run_on_commit, settings
):
    settings.INCIDENT_REOPEN_HOURS = 48
    start = timezone.now() - timedelta(hours=30)
    first = alert_in_incident(run_on_commit, tenant, alice, at=start)
    incident = services.resolve_incident(incident_of(first), actor=operator, classification="false_positive")
    assert incident.status == Incident.Status.RESOLVED

    again = alert_in_incident(
        run_on_commit, tenant, alice, K.INBOX_MANIPULATION, at=start + timedelta(hours=29)
    )

    incident.refresh_from_db()
    assert incident_of(again) == incident
    assert incident.status == Incident.Status.ACTIVE and incident.resolved_at is None
    assert AuditEvent.objects.filter(
        action="incidents.incident.reopened", target_id=str(incident.pk)
    ).exists()
    assert ChangeFeedEntry.objects.filter(kind="incident.reopened").count() == 1


def test_evidence_after_the_window_opens_a_new_incident(tenant, alice, operator, run_on_commit, settings):
    settings.INCIDENT_REOPEN_HOURS = 48
    start = timezone.now() - timedelta(days=5)
    first = alert_in_incident(run_on_commit, tenant, alice, at=start)
    old = services.resolve_incident(incident_of(first), actor=operator, classification="tp_compromised")

    again = alert_in_incident(
        run_on_commit, tenant, alice, K.INBOX_MANIPULATION, at=start + timedelta(hours=49)
    )

    assert incident_of(again) != old
    old.refresh_from_db()
    assert old.status == Incident.Status.RESOLVED


def test_a_restriction_by_hand_joins_the_open_incident(tenant, alice, administrator, run_on_commit):
    alert = alert_in_incident(run_on_commit, tenant, alice)
    with run_on_commit():
        restriction, _ = restrict_user(
            alice, policy_name="Manual restriction", reason={"text": "x"}, expires_at=None, source="manual",
            actor=administrator,
        )  # fmt: skip
    incident = incident_of(alert)
    assert list(incident.restrictions.all()) == [restriction]
    assert Incident.objects.count() == 1


def test_a_restriction_without_an_incident_opens_one(tenant, alice, administrator, run_on_commit):
    with run_on_commit():
        restriction, _ = restrict_user(
            alice, policy_name="Manual restriction", reason={"text": "x"}, expires_at=None, source="manual",
            actor=administrator,
        )  # fmt: skip
    incident = Incident.objects.get(restriction_links__restriction=restriction)
    assert incident.mailbox == alice
    assert services.correlate_restriction(restriction.pk) == incident  # redelivery: the same, nothing added
    assert Incident.objects.count() == 1


def test_an_investigation_joins_its_alerts_incident(tenant, alice, run_on_commit):
    alert = alert_in_incident(run_on_commit, tenant, alice)  # the forwarding policy investigates always
    incident = incident_of(alert)
    investigations = list(incident.investigations.all())
    assert len(investigations) == 1 and alert in investigations[0].alerts.all()
    assert incident.title.startswith("Suspicious email forwarding activity")


def test_resolving_an_incident_resolves_its_open_alerts(tenant, alice, operator, run_on_commit):
    first = alert_in_incident(run_on_commit, tenant, alice, K.FORWARDING)
    second = alert_in_incident(run_on_commit, tenant, alice, K.INBOX_MANIPULATION)

    services.resolve_incident(
        incident_of(first), actor=operator, classification="tp_compromised", comment="ok"
    )

    for alert in (first, second):
        alert.refresh_from_db()
        assert alert.status == Alert.Status.RESOLVED and alert.classification == "tp_compromised"
    incident = incident_of(first)
    assert incident.resolved_by == operator and incident.determination == "ok"
    assert ChangeFeedEntry.objects.filter(kind="incident.resolved").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_alerts_of_one_user_correlating_at_once_open_one_incident(tenant):
    from tests.alerts.alert_builders import policy_of

    alice = make_mailbox(tenant, "alice@contoso.example")
    policy_of(tenant)
    # Raise both alerts with correlation switched off (no commit hooks run here), then correlate concurrently.
    alerts = [make_alert(tenant, alice, kind) for kind in (K.FORWARDING, K.INBOX_MANIPULATION)]
    IncidentAlert.objects.all().delete()
    Incident.objects.all().delete()
    _, errors = run_together(*(partial(services.correlate_alert, a.pk) for a in alerts), timeout=30)

    assert errors == []
    assert Incident.objects.count() == 1
    assert IncidentAlert.objects.filter(incident=Incident.objects.get()).count() == 2
