"""The incidents queue and the incident page: who sees and does what, the bulk bar, the CSV, the timeline with
every related object linked, the links from alerts, restrictions, investigations, actions and mailboxes, the
dashboard's Active incidents panel, and a flat query count for the incident page."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.models import Alert, AlertPolicy
from incidents.models import Incident
from investigations.models import RemediationAction
from restricted_users.models import Restriction
from restricted_users.services import restrict_user
from tests.alerts.alert_builders import make_alert, make_mailbox
from tests.builders import READ_ACCESS

pytestmark = pytest.mark.django_db
K = AlertPolicy.Kind


@pytest.fixture
def raise_alert_for(tenant, django_capture_on_commit_callbacks):
    """Raise an alert the way detectors do and run its on-commit tasks (incident and investigation)."""

    def build(mailbox, kind=K.FORWARDING, at=None) -> Alert:
        with django_capture_on_commit_callbacks(execute=True):
            return make_alert(tenant, mailbox, kind, at=at)

    return build


@pytest.fixture
def alice(tenant):
    return make_mailbox(tenant, "alice@contoso.example", display_name="Alice")


@pytest.fixture
def incident(alice, raise_alert_for) -> Incident:
    alert = raise_alert_for(alice)
    return Incident.objects.get(alert_links__alert=alert)


@pytest.fixture
def restriction(incident, administrator) -> Restriction:
    """The incident's user, restricted by hand and correlated into the incident."""
    from incidents.services import correlate_restriction

    restriction, _ = restrict_user(
        incident.mailbox, policy_name="Manual restriction", reason={"text": "x"}, expires_at=None,
        source="manual", actor=administrator,
    )  # fmt: skip
    correlate_restriction(restriction.pk)
    return restriction


# ------------------------------------------------------------------------------------------------ permissions


@pytest.mark.parametrize(("persona", "status"), READ_ACCESS)
def test_the_queue_and_the_page_follow_the_roles(request, persona, status, incident):
    client = request.getfixturevalue(persona)
    assert client.get("/incidents/").status_code == status
    assert client.get(f"/incidents/{incident.pk}/").status_code == status
    assert client.get("/incidents/?format=csv").status_code == status


@pytest.mark.parametrize("persona", ["reader_client", "nobody_client"])
def test_only_people_who_triage_may_post(request, persona, incident):
    client = request.getfixturevalue(persona)
    for path, data in (
        (f"/incidents/{incident.pk}/assign/", {"assignee": "me"}),
        (f"/incidents/{incident.pk}/status/", {"status": "in_progress"}),
        (f"/incidents/{incident.pk}/resolve/", {"classification": "false_positive"}),
        ("/incidents/bulk/", {"ids": [incident.pk], "operation": "assign"}),
    ):
        assert client.post(path, data).status_code == 403, path
    incident.refresh_from_db()
    assert incident.status == Incident.Status.ACTIVE and incident.assigned_to is None


def test_a_reader_sees_no_controls_and_an_operator_does(reader_client, operator_client, incident):
    for path in ("/incidents/", f"/incidents/{incident.pk}/"):
        assert 'name="ids"' not in reader_client.get(path).content.decode()
        assert (
            "Resolve"
            not in reader_client.get(f"/incidents/{incident.pk}/").content.decode().split("Timeline")[0]
        )
    assert 'name="ids"' in operator_client.get("/incidents/").content.decode()
    assert "Resolve incident" in operator_client.get(f"/incidents/{incident.pk}/").content.decode()


# ------------------------------------------------------------------------------------------------ triage


def test_an_operator_assigns_and_resolves_from_the_page(operator_client, operator, incident):
    operator_client.post(f"/incidents/{incident.pk}/assign/", {"assignee": "me"})
    incident.refresh_from_db()
    assert incident.assigned_to == operator and incident.status == Incident.Status.IN_PROGRESS

    response = operator_client.post(
        f"/incidents/{incident.pk}/resolve/", {"classification": "tp_compromised", "comment": "cleaned"}
    )
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == Incident.Status.RESOLVED and incident.determination == "cleaned"
    assert not Alert.objects.open().filter(incident_link__incident=incident).exists()


def test_resolving_without_a_classification_changes_nothing(operator_client, incident):
    response = operator_client.post(f"/incidents/{incident.pk}/resolve/", {"classification": ""}, follow=True)
    assert "Nothing changed" in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == Incident.Status.ACTIVE


def test_bulk_assign_and_resolve_work_on_every_selected_incident(
    operator_client, operator, tenant, alice, raise_alert_for
):
    bob = make_mailbox(tenant, "bob@contoso.example")
    first = Incident.objects.get(alert_links__alert=raise_alert_for(alice))
    second = Incident.objects.get(alert_links__alert=raise_alert_for(bob))

    operator_client.post("/incidents/bulk/", {"ids": [first.pk, second.pk], "operation": "assign"})
    assert set(Incident.objects.values_list("assigned_to", flat=True)) == {operator.pk}

    response = operator_client.post(
        "/incidents/bulk/",
        {"ids": [first.pk, second.pk], "operation": "resolve", "classification": "false_positive"},
        follow=True,
    )
    assert "2 incidents resolved" in response.content.decode()
    assert set(Incident.objects.values_list("status", flat=True)) == {Incident.Status.RESOLVED}
    assert not Alert.objects.open().exists()


def test_a_bulk_request_naming_a_missing_incident_changes_nothing(operator_client, incident):
    response = operator_client.post(
        "/incidents/bulk/", {"ids": [incident.pk, 999999], "operation": "assign"}, follow=True
    )
    assert "no longer exist" in response.content.decode()
    incident.refresh_from_db()
    assert incident.assigned_to is None


def test_bulk_resolve_needs_a_classification(operator_client, incident):
    response = operator_client.post(
        "/incidents/bulk/", {"ids": [incident.pk], "operation": "resolve"}, follow=True
    )
    assert "Choose a classification" in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == Incident.Status.ACTIVE


# ------------------------------------------------------------------------------------------------ queue


def test_the_queue_filters_in_the_url(reader_client, tenant, alice, raise_alert_for, operator):
    bob = make_mailbox(tenant, "bob@contoso.example")
    mine = Incident.objects.get(alert_links__alert=raise_alert_for(alice))
    theirs = Incident.objects.get(alert_links__alert=raise_alert_for(bob, K.SIGN_IN))
    Incident.objects.filter(pk=theirs.pk).update(severity="medium", assigned_to=operator)

    def shown(query: str) -> bool:
        return f'href="/incidents/{mine.pk}/"' in reader_client.get(f"/incidents/?{query}").content.decode()

    page = reader_client.get("/incidents/?severity=medium").content.decode()
    assert f"/incidents/{theirs.pk}/" in page and f'/incidents/{mine.pk}/"' not in page
    page = reader_client.get(f"/incidents/?assignee={operator.username}").content.decode()
    assert f"/incidents/{theirs.pk}/" in page and f'/incidents/{mine.pk}/"' not in page
    assert shown("assignee=none") and shown("user=alice@contoso.example")
    assert not shown("user=bob@contoso.example")
    future = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert not shown(f"since={future}")
    assert not shown("status=resolved")


def test_the_csv_carries_the_ids_of_what_each_incident_groups(reader_client, incident):
    response = reader_client.get("/incidents/?format=csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == str(incident.pk) and row["user"] == "alice@contoso.example"
    alert_ids = {str(pk) for pk in Alert.objects.values_list("pk", flat=True)}
    assert set(row["alerts"].split()) == alert_ids
    assert row["investigations"] == " ".join(
        str(pk) for pk in incident.investigation_links.values_list("investigation_id", flat=True)
    )


def test_the_other_csvs_carry_the_incident_id(reader_client, incident, restriction):
    for path in ("/alerts/?format=csv", "/restricted-users/?format=csv", "/investigations/?format=csv"):
        response = reader_client.get(path)
        rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert rows and all(row["incident"] == str(incident.pk) for row in rows), path


# ------------------------------------------------------------------------------------------------ page


def test_the_page_tells_the_story_with_every_object_linked(reader_client, incident, restriction):
    alert = Alert.objects.get(incident_link__incident=incident)
    investigation = incident.investigations.get()
    page = reader_client.get(f"/incidents/{incident.pk}/").content.decode()
    timeline = page.split('id="timeline-heading"')[1].split('id="alerts-heading"')[0]
    expected = ("First attacker activity", "Alert raised", "Investigation opened", "Incident opened")
    for text in (*expected, "User restricted from sending"):
        assert text in timeline, text
    assert f'href="/alerts/{alert.pk}/"' in timeline
    assert f'href="/investigations/{investigation.pk}/"' in timeline
    assert f'href="/restricted-users/{restriction.pk}/"' in timeline
    assert f'href="/mailboxes/{incident.mailbox_id}/"' in page
    assert timeline.index("First attacker activity") < timeline.index("Alert raised")
    for action in RemediationAction.objects.filter(investigation=investigation):
        assert f"/investigations/{investigation.pk}/#action-{action.pk}" in page


def test_the_incident_page_costs_the_same_queries_however_big(reader_client, tenant, alice, raise_alert_for):
    first = raise_alert_for(alice)
    incident = Incident.objects.get(alert_links__alert=first)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert reader_client.get(f"/incidents/{incident.pk}/").status_code == 200
        return len(queries)

    count()  # warm the session
    small = count()
    start = timezone.now() - timedelta(hours=3)
    for n, kind in enumerate((K.INBOX_MANIPULATION, K.DELEGATION, K.SIGN_IN, K.SENDING_PATTERN)):
        raise_alert_for(alice, kind, at=start + timedelta(minutes=n))
    assert Alert.objects.filter(incident_link__incident=incident).count() == 5
    assert count() == small


# ------------------------------------------------------------------------------------------------ links


def test_alert_pages_link_to_the_incident_and_the_investigation(reader_client, incident):
    alert = Alert.objects.get(incident_link__incident=incident)
    investigation = incident.investigations.get()
    page = reader_client.get(f"/alerts/{alert.pk}/").content.decode()
    assert (
        f'href="/incidents/{incident.pk}/"' in page and f'href="/investigations/{investigation.pk}/"' in page
    )
    listing = reader_client.get("/alerts/").content.decode()
    assert (
        f'href="/incidents/{incident.pk}/"' in listing
        and f'href="/investigations/{investigation.pk}/"' in listing
    )


def test_restriction_pages_link_to_the_incident_and_the_investigation(reader_client, incident, restriction):
    investigation = incident.investigations.get()
    for path in (f"/restricted-users/{restriction.pk}/", "/restricted-users/"):
        page = reader_client.get(path).content.decode()
        assert f'href="/incidents/{incident.pk}/"' in page, path
        assert f'href="/investigations/{investigation.pk}/"' in page, path


def test_investigation_and_action_pages_link_to_the_incident(reader_client, incident):
    investigation = incident.investigations.get()
    page = reader_client.get(f"/investigations/{investigation.pk}/").content.decode()
    assert f'href="/incidents/{incident.pk}/"' in page
    assert f'href="/incidents/{incident.pk}/"' in reader_client.get("/investigations/").content.decode()
    RemediationAction.objects.create(
        tenant=incident.tenant,
        investigation=investigation,
        action_type=RemediationAction.Type.REVOKE_SESSIONS,
        target={"mailbox": incident.mailbox_id},
        target_label=incident.mailbox.address,
        target_key=f"sessions:{incident.mailbox_id}:test",
        expires_at=timezone.now() + timedelta(days=7),
    )
    page = reader_client.get("/action-center/?status=").content.decode()
    assert f'href="/incidents/{incident.pk}/"' in page


def test_the_mailbox_page_links_the_open_investigation_instead_of_offering_another(operator_client, incident):
    investigation = incident.investigations.get()
    investigation.status = investigation.Status.PENDING_ACTION
    investigation.save(update_fields=["status"])
    page = operator_client.get(f"/mailboxes/{incident.mailbox_id}/").content.decode()
    assert f'href="/incidents/{incident.pk}/"' in page
    assert "Start investigation" not in page
    assert f'href="/investigations/{investigation.pk}/"' in page

    investigation.status = investigation.Status.REMEDIATED
    investigation.save(update_fields=["status"])
    assert "Start investigation" in operator_client.get(f"/mailboxes/{incident.mailbox_id}/").content.decode()


def test_the_dashboard_lists_active_incidents_first_highest_severity_then_oldest(
    reader_client, tenant, alice, raise_alert_for
):
    bob = make_mailbox(tenant, "bob@contoso.example")
    carol = make_mailbox(tenant, "carol@contoso.example")
    older = Incident.objects.get(alert_links__alert=raise_alert_for(alice))
    newer = Incident.objects.get(alert_links__alert=raise_alert_for(bob))
    medium = Incident.objects.get(alert_links__alert=raise_alert_for(carol, K.SIGN_IN))
    Incident.objects.filter(pk=older.pk).update(
        created_at=timezone.now() - timedelta(days=1), severity="high"
    )
    Incident.objects.filter(pk=newer.pk).update(severity="high")
    Incident.objects.filter(pk=medium.pk).update(
        severity="medium", created_at=timezone.now() - timedelta(days=2)
    )

    page = reader_client.get("/").content.decode()
    panel = page.split('id="active-incidents"')[1].split("</section>")[0]
    assert page.index('id="active-incidents"') < page.index('id="severity-heading"')
    positions = [panel.index(f'href="/incidents/{i.pk}/"') for i in (older, newer, medium)]
    assert positions == sorted(positions)


def test_the_dashboard_lists_the_ten_first_open_incidents_of_many_with_their_counts(
    reader_client, tenant, raise_alert_for
):
    severities = ["low", "high", "medium", "informational"]
    for n in range(12):
        mailbox = make_mailbox(tenant, f"user{n}@contoso.example")
        incident = Incident.objects.get(alert_links__alert=raise_alert_for(mailbox))
        Incident.objects.filter(pk=incident.pk).update(
            severity=severities[n % 4], created_at=timezone.now() - timedelta(hours=n)
        )
    resolved = Incident.objects.order_by("pk").first()
    Incident.objects.filter(pk=resolved.pk).update(status=Incident.Status.RESOLVED, severity="high")
    rank = {"high": 3, "medium": 2, "low": 1, "informational": 0}
    expected = sorted(Incident.objects.open(), key=lambda i: (-rank[i.severity], i.created_at, i.pk))[:10]

    panel = reader_client.get("/").context["active_incidents"]

    assert [row.pk for row in panel["rows"]] == [i.pk for i in expected]
    assert panel["count"] == 11
    assert all(row.alert_count == 1 and row.open_alert_count == 1 for row in panel["rows"])
