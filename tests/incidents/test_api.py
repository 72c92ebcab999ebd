"""``/api/v1/incidents/``: reads for every role, triage for operators, the incident of one alert /
restriction / investigation / action by filter, and a schema that stays valid."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.utils import timezone

from alerts.models import Alert, AlertPolicy
from incidents.models import Incident
from investigations.models import RemediationAction
from tests.builders import READ_ACCESS

from .builders import alert_in_incident, incident_of, make_mailbox

pytestmark = pytest.mark.django_db
K = AlertPolicy.Kind


@pytest.fixture
def incident(tenant, run_on_commit) -> Incident:
    alice = make_mailbox(tenant, "alice@contoso.example")
    return incident_of(alert_in_incident(run_on_commit, tenant, alice))


@pytest.mark.parametrize(("persona", "status"), READ_ACCESS)
def test_reads_follow_the_roles(request, persona, status, incident):
    client = request.getfixturevalue(persona)
    assert client.get("/api/v1/incidents/").status_code == status
    assert client.get(f"/api/v1/incidents/{incident.pk}/").status_code == status


def test_anonymous_callers_are_refused(client, incident):
    assert client.get("/api/v1/incidents/").status_code in (401, 403)


@pytest.mark.parametrize("persona", ["reader_client", "nobody_client"])
def test_only_operators_triage(request, persona, incident):
    client = request.getfixturevalue(persona)
    base = f"/api/v1/incidents/{incident.pk}"
    for path, body in (
        (f"{base}/assign/", {"assignee": "me"}),
        (f"{base}/status/", {"status": "in_progress"}),
        (f"{base}/resolve/", {"classification": "false_positive"}),
    ):
        assert client.post(path, body, content_type="application/json").status_code == 403, path


def test_the_detail_names_everything_the_incident_groups(reader_client, incident):
    body = reader_client.get(f"/api/v1/incidents/{incident.pk}/").json()
    alert = Alert.objects.get(incident_link__incident=incident)
    assert body["alerts"] == [alert.pk]
    assert body["investigations"] == list(
        incident.investigation_links.values_list("investigation_id", flat=True)
    )
    assert body["user"]["address"] == "alice@contoso.example"
    assert body["severity"] == alert.severity and body["status"] == "active"
    assert {a["id"] for a in body["actions"]} == set(
        RemediationAction.objects.filter(investigation__incident_link__incident=incident).values_list(
            "pk", flat=True
        )
    )


def test_the_incident_of_an_object_is_found_by_filter(reader_client, incident, tenant, run_on_commit):
    other = incident_of(alert_in_incident(run_on_commit, tenant, make_mailbox(tenant, "bob@contoso.example")))
    alert = Alert.objects.get(incident_link__incident=incident)
    investigation = incident.investigation_links.get().investigation
    action = RemediationAction.objects.create(
        tenant=tenant,
        investigation=investigation,
        action_type=RemediationAction.Type.REVOKE_SESSIONS,
        target={},
        target_label="x",
        target_key="sessions:test",
        expires_at=timezone.now() + timezone.timedelta(days=7),
    )
    for query in (f"alert={alert.pk}", f"investigation={investigation.pk}", f"action={action.pk}"):
        ids = [row["id"] for row in reader_client.get(f"/api/v1/incidents/?{query}").json()["results"]]
        assert ids == [incident.pk], query
    assert [
        r["id"] for r in reader_client.get("/api/v1/incidents/?user=bob@contoso.example").json()["results"]
    ] == [other.pk]
    assert reader_client.get("/api/v1/incidents/?alert=999999").json()["results"] == []


def test_an_operator_triages_through_the_api(operator_client, operator, incident):
    base = f"/api/v1/incidents/{incident.pk}"
    body = operator_client.post(f"{base}/assign/", {"assignee": "me"}, content_type="application/json").json()
    assert body["assigned_to"] == operator.username and body["status"] == "in_progress"

    body = operator_client.post(
        f"{base}/status/", {"status": "active"}, content_type="application/json"
    ).json()
    assert body["status"] == "active"

    response = operator_client.post(
        f"{base}/resolve/", {"classification": "nonsense"}, content_type="application/json"
    )
    assert response.status_code == 400
    body = operator_client.post(
        f"{base}/resolve/",
        {"classification": "tp_compromised", "comment": "done"},
        content_type="application/json",
    ).json()
    assert body["status"] == "resolved" and body["classification"] == "tp_compromised"
    assert body["open_alert_count"] == 0


def test_assigning_to_someone_who_may_not_triage_is_refused(operator_client, reader, incident):
    response = operator_client.post(
        f"/api/v1/incidents/{incident.pk}/assign/",
        {"assignee": reader.username},
        content_type="application/json",
    )
    assert response.status_code == 400 and "may not triage" in response.json()["detail"]
    incident.refresh_from_db()
    assert incident.assigned_to is None


def test_the_schema_is_valid_and_the_incidents_part_raises_no_warning(tmp_path, capsys):
    call_command("spectacular", "--validate", "--file", str(tmp_path / "schema.yaml"))
    assert "/api/v1/incidents/{id}/resolve/" in (tmp_path / "schema.yaml").read_text()
    warnings = capsys.readouterr().err
    assert (
        "[Incident" not in warnings and "incidents/api" not in warnings and "IncidentStatus" not in warnings
    )
