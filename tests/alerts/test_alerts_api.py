"""``/api/v1/alerts/``: the shared filters, the detail with its evidence, triage actions for operators, and
tokens limited to their tenant."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertPolicy, Suppression
from core.models import ApiToken, AuditEvent
from core.services import create_api_token
from tests.builders import audited_actions

from .alert_builders import make_alert, make_mailbox, policy_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def alerts(tenant, other_tenant):
    """Four alerts: two users, three policies, two tenants, one of them resolved and one a day old."""
    now = timezone.now()
    alice = make_mailbox(tenant, "alice@example.com", display_name="Alice Ng")
    bob = make_mailbox(tenant, "bob@example.com")
    carol = make_mailbox(other_tenant, "carol@other.example")
    forwarding = make_alert(
        tenant, alice, AlertPolicy.Kind.FORWARDING, events=3, at=now - timedelta(minutes=10)
    )
    delegation = make_alert(
        tenant, alice, AlertPolicy.Kind.DELEGATION, event_kind="delegation", at=now - timedelta(days=1)
    )
    rule = make_alert(tenant, bob, AlertPolicy.Kind.FORWARDING_RULE, event_kind="inbox_rule")
    Alert.objects.filter(pk=rule.pk).update(status=Alert.Status.RESOLVED)
    foreign = make_alert(other_tenant, carol, AlertPolicy.Kind.FORWARDING)
    return {"forwarding": forwarding, "delegation": delegation, "rule": rule, "foreign": foreign}


def _ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_the_list_shows_every_alert_to_a_reader(reader_client, alerts):
    assert _ids(reader_client.get("/api/v1/alerts/")) == {a.pk for a in alerts.values()}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=open", {"forwarding", "delegation", "foreign"}),
        ("status=resolved", {"rule"}),
        ("severity=high", {"forwarding", "foreign"}),
        ("severity=low", {"delegation"}),
        ("policy=forwarding", {"forwarding", "foreign"}),
        ("category=Permissions", {"delegation"}),
        ("user=alice@example.com", {"forwarding", "delegation"}),
        ("user=ALICE@example.com", {"forwarding", "delegation"}),
        ("user=ng", {"forwarding", "delegation"}),
        ("user=lice@example.com", set()),
        ("last=24h&policy=delegation", set()),
        ("last=7d&policy=delegation", {"delegation"}),
    ],
)
def test_the_list_filters(reader_client, alerts, query, expected):
    assert _ids(reader_client.get(f"/api/v1/alerts/?{query}")) == {alerts[name].pk for name in expected}


def test_the_list_filters_by_policy_id_tenant_and_time_range(reader_client, alerts, tenant, other_tenant):
    delegation = alerts["delegation"]
    assert _ids(reader_client.get(f"/api/v1/alerts/?policy={delegation.policy_id}")) == {delegation.pk}
    assert _ids(reader_client.get(f"/api/v1/alerts/?tenant={other_tenant.slug}")) == {alerts["foreign"].pk}
    assert _ids(reader_client.get(f"/api/v1/alerts/?tenant={tenant.slug}")) == {
        alerts[name].pk for name in ("forwarding", "delegation", "rule")
    }
    # The id the list took before tenants were named by slug everywhere still works (older links).
    assert _ids(reader_client.get(f"/api/v1/alerts/?tenant={other_tenant.pk}")) == {alerts["foreign"].pk}
    until = (timezone.now() - timedelta(hours=12)).isoformat()
    response = reader_client.get("/api/v1/alerts/", {"until": until})
    assert _ids(response) == {delegation.pk}


def test_the_list_sorts_by_severity_meaning(reader_client, alerts):
    rows = reader_client.get("/api/v1/alerts/?ordering=-severity").json()["results"]
    ranks = {"high": 3, "medium": 2, "low": 1, "informational": 0}
    assert [ranks[r["severity"]] for r in rows] == sorted((ranks[r["severity"]] for r in rows), reverse=True)


def test_the_detail_carries_the_evidence(reader_client, alerts):
    alert = alerts["forwarding"]
    body = reader_client.get(f"/api/v1/alerts/{alert.pk}/").json()
    assert body["evidence_count"] == 3
    assert len(body["evidence"]) == 3
    assert {e["kind"] for e in body["evidence"]} == {"forwarding"}
    assert body["user"]["address"] == "alice@example.com"
    assert body["policy"]["kind"] == "forwarding"


def test_anonymous_callers_are_refused(client, alerts):
    assert client.get("/api/v1/alerts/").status_code in (401, 403)


def test_a_reader_cannot_triage(reader_client, alerts):
    alert = alerts["forwarding"]
    for action, payload in [
        ("status", {"status": "in_progress"}),
        ("assign", {"assignee": "me"}),
        ("comment", {"body": "hi"}),
        ("resolve", {"classification": "false_positive"}),
    ]:
        response = reader_client.post(
            f"/api/v1/alerts/{alert.pk}/{action}/", payload, content_type="application/json"
        )
        assert response.status_code == 403, action
    alert.refresh_from_db()
    assert alert.status == Alert.Status.NEW
    assert not AuditEvent.objects.for_target(alert).exclude(action="alerts.alert.raised").exists()


def test_an_operator_triages_through_the_api_and_every_step_is_audited(operator_client, operator, alerts):
    alert = alerts["forwarding"]
    url = f"/api/v1/alerts/{alert.pk}"

    def post(action: str, payload: dict):
        return operator_client.post(f"{url}/{action}/", payload, content_type="application/json")

    assert post("status", {"status": "in_progress"}).json()["status"] == "in_progress"
    assert post("assign", {"assignee": "me"}).json()["assigned_to"] == operator.username
    assert post("assign", {"assignee": None}).json()["assigned_to"] is None
    commented = post("comment", {"body": "Checked with the user: not them."}).json()
    assert [c["body"] for c in commented["comments"]] == ["Checked with the user: not them."]
    resolved = post("resolve", {"classification": "tp_compromised", "comment": "Password reset."}).json()
    assert resolved["status"] == "resolved"
    assert resolved["classification"] == "tp_compromised"
    assert resolved["resolved_by"] == operator.username
    assert audited_actions(alert, actor=operator) == [
        "alerts.alert.status_changed",
        "alerts.alert.assigned",
        "alerts.alert.assigned",
        "alerts.alert.commented",
        "alerts.alert.resolved",
    ]


@pytest.mark.parametrize(
    ("action", "payload"),
    [
        ("status", {"status": "resolved"}),
        ("status", {"status": "sleeping"}),
        ("comment", {"body": "   "}),
        ("resolve", {"classification": "who knows"}),
        ("resolve", {"classification": "false_positive", "suppress_minutes": 0}),
        ("resolve", {"classification": "false_positive", "suppress_minutes": 60 * 24 * 400}),
        ("assign", {"assignee": "nobody-by-that-name"}),
    ],
)
def test_domain_errors_answer_400_with_a_detail(operator_client, alerts, action, payload):
    alert = alerts["forwarding"]
    response = operator_client.post(
        f"/api/v1/alerts/{alert.pk}/{action}/", payload, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["detail"]
    alert.refresh_from_db()
    assert alert.status == Alert.Status.NEW


def test_an_alert_cannot_be_assigned_to_a_reader(operator_client, reader, alerts):
    alert = alerts["forwarding"]
    response = operator_client.post(
        f"/api/v1/alerts/{alert.pk}/assign/", {"assignee": reader.username}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json() == {"detail": f"{reader.username!r} is not a person who may triage alerts."}


def test_the_assign_service_itself_refuses_a_reader_or_a_deactivated_operator(operator, reader, alerts):
    from alerts.exceptions import AlertStateError
    from alerts.services import assign_alert

    alert = alerts["forwarding"]
    with pytest.raises(AlertStateError):
        assign_alert(alert, actor=operator, assignee=reader)
    operator.is_active = False
    operator.save(update_fields=["is_active"])
    with pytest.raises(AlertStateError):
        assign_alert(alert, actor=operator, assignee=operator)
    alert.refresh_from_db()
    assert alert.assigned_to is None
    assert not AuditEvent.objects.filter(action="alerts.alert.assigned").exists()


def test_resolving_with_suppression_stops_new_alerts_for_the_pair(operator_client, alerts, tenant):
    alert = alerts["forwarding"]
    response = operator_client.post(
        f"/api/v1/alerts/{alert.pk}/resolve/",
        {"classification": "informational", "suppress_minutes": 60, "comment": "Known mail migration."},
        content_type="application/json",
    )
    assert response.status_code == 200
    suppression = Suppression.objects.get()
    assert suppression.until - timezone.now() <= timedelta(minutes=60)
    from alerts.detection import Detection, Evidence
    from alerts.services import raise_alert

    detection = Detection(alert.mailbox_id, [Evidence("forwarding", "evt-after-resolve", timezone.now())])
    assert raise_alert(policy_of(tenant, AlertPolicy.Kind.FORWARDING), detection) == []
    assert Alert.objects.filter(mailbox=alert.mailbox, policy=alert.policy).count() == 1


def test_a_read_token_sees_only_its_tenant_and_cannot_triage(client, administrator, tenant, alerts):
    _, raw = create_api_token(tenant, actor=administrator, name="siem", scope=ApiToken.Scope.READ)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    ids = _ids(client.get("/api/v1/alerts/", **auth))
    assert ids == {alerts["forwarding"].pk, alerts["delegation"].pk, alerts["rule"].pk}
    assert client.get(f"/api/v1/alerts/{alerts['foreign'].pk}/", **auth).status_code == 404
    forged = client.post(
        f"/api/v1/alerts/{alerts['forwarding'].pk}/resolve/",
        {"classification": "false_positive"},
        content_type="application/json",
        **auth,
    )
    assert forged.status_code == 403


def test_an_ingest_token_reads_no_alert(client, administrator, tenant, alerts):
    _, raw = create_api_token(tenant, actor=administrator, name="gateway", scope=ApiToken.Scope.INGEST)
    assert client.get("/api/v1/alerts/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 403
