"""/api/v1/investigations/ and /api/v1/actions/: reads for every role and read tokens (their tenant only),
decisions, undo and manual steps for operators; domain errors answer 400 {"detail": …}."""

from __future__ import annotations

import pytest

from core.models import ApiToken
from core.services import create_api_token
from investigations.actions import run_approved_action
from investigations.models import Investigation, RemediationAction
from tests.builders import api_client_for

from .action_builders import (
    EVIL,
    HOME,
    Status,
    Type,
    approve_now,
    forwarding_investigation,
    make_action,
    make_investigation,
    make_mailbox,
)

pytestmark = pytest.mark.django_db

INVESTIGATIONS = "/api/v1/investigations/"
ACTIONS = "/api/v1/actions/"


@pytest.fixture
def investigation(tenant):
    investigation = forwarding_investigation(tenant)
    make_action(investigation, Type.TURN_OFF_FORWARDING, label=f"Forwarding to {EVIL}")
    make_action(investigation, Type.REVOKE_SESSIONS)
    return investigation


def _action(investigation, action_type) -> RemediationAction:
    return investigation.actions.get(action_type=action_type)


def test_anonymous_callers_and_users_without_a_role_are_refused(client, nobody, investigation):
    assert client.get(INVESTIGATIONS).status_code in (401, 403)
    assert api_client_for(nobody).get(INVESTIGATIONS).status_code == 403
    assert api_client_for(nobody).get(ACTIONS).status_code == 403


def test_a_reader_lists_investigations_with_counts_and_filters(reader, tenant, investigation):
    make_investigation(make_mailbox(tenant, f"bob@{HOME}"), status=Investigation.Status.NO_THREATS)
    client = api_client_for(reader)
    body = client.get(INVESTIGATIONS).json()
    assert body["count"] == 2
    listed = client.get(INVESTIGATIONS, {"status": "open"}).json()["results"]
    assert [
        (i["id"], i["user"], i["threat_count"], i["action_count"], i["pending_count"]) for i in listed
    ] == [(investigation.pk, "alice@contoso.example", 1, 2, 2)]
    assert client.get(INVESTIGATIONS, {"user": "bob"}).json()["count"] == 1


def test_the_detail_carries_findings_clusters_runs_and_actions(reader, investigation):
    detail = api_client_for(reader).get(f"{INVESTIGATIONS}{investigation.pk}/").json()
    assert detail["status"] == "pending_action" and detail["verdict"] == "compromised"
    assert [f["verdict"] for f in detail["findings"]] == ["malicious"]
    assert detail["clusters"] == [] and detail["runs"] == []
    assert {a["action_type"] for a in detail["actions"]} == {"turn_off_forwarding", "revoke_sessions"}
    forwarding = next(a for a in detail["actions"] if a["action_type"] == "turn_off_forwarding")
    assert forwarding["reversible"] is True and forwarding["undoable"] is False


def test_actions_are_listed_and_filtered(reader, operator, investigation):
    approve_now(_action(investigation, Type.REVOKE_SESSIONS), operator)
    client = api_client_for(reader)
    pending = client.get(ACTIONS, {"status": "pending"}).json()["results"]
    assert [a["action_type"] for a in pending] == ["turn_off_forwarding"]
    assert client.get(ACTIONS, {"status": "history"}).json()["count"] == 1
    assert (
        client.get(ACTIONS, {"action_type": "revoke_sessions"}).json()["results"][0]["status"] == "approved"
    )
    assert client.get(ACTIONS, {"investigation": investigation.pk}).json()["count"] == 2


def test_readers_cannot_decide_undo_stop_or_close_manual_steps(reader, investigation):
    action = _action(investigation, Type.TURN_OFF_FORWARDING)
    client = api_client_for(reader)
    for url, data in (
        (f"{ACTIONS}{action.pk}/approve/", {}),
        (f"{ACTIONS}{action.pk}/reject/", {"comment": "no"}),
        (f"{ACTIONS}decide/", {"ids": [action.pk], "decision": "approve"}),
        (f"{ACTIONS}{action.pk}/undo/", {"comment": "no"}),
        (f"{ACTIONS}{action.pk}/manual-complete/", {"done": True}),
        (f"{INVESTIGATIONS}{investigation.pk}/stop/", {"comment": "no"}),
    ):
        assert client.post(url, data, format="json").status_code == 403, url
    action.refresh_from_db()
    assert action.status == Status.PENDING


def test_an_operator_approves_and_the_worker_completes_it(
    operator, investigation, django_capture_on_commit_callbacks
):
    action = _action(investigation, Type.TURN_OFF_FORWARDING)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client_for(operator).post(
            f"{ACTIONS}{action.pk}/approve/", {"comment": "ok"}, format="json"
        )
    assert response.status_code == 200
    assert response.json()["status"] == "approved"
    action.refresh_from_db()
    assert action.status == Status.COMPLETED
    assert action.decided_by == operator


def test_domain_errors_answer_400_with_a_detail(operator, investigation):
    client = api_client_for(operator)
    action = _action(investigation, Type.REVOKE_SESSIONS)
    rejected = client.post(f"{ACTIONS}{action.pk}/reject/", {}, format="json")
    assert rejected.status_code == 400
    assert rejected.json() == {
        "detail": "Give a comment saying why the action is rejected. Nothing was decided."
    }
    missing = client.post(
        f"{ACTIONS}decide/", {"ids": [action.pk, 999999], "decision": "approve"}, format="json"
    )
    assert missing.status_code == 400 and missing.json()["detail"] == "No such action: #999999."
    undo = client.post(f"{ACTIONS}{action.pk}/undo/", {"comment": "why"}, format="json")
    assert undo.status_code == 400 and "cannot be undone" in undo.json()["detail"]
    assert (
        client.post(f"{ACTIONS}{action.pk}/undo/", {}, format="json").status_code == 400
    )  # comment required


def test_bulk_reject_decides_every_action_of_one_type(operator, tenant, investigation):
    other = make_investigation(make_mailbox(tenant, f"bob@{HOME}"))
    ids = [_action(investigation, Type.REVOKE_SESSIONS).pk, make_action(other, Type.REVOKE_SESSIONS).pk]
    response = api_client_for(operator).post(
        f"{ACTIONS}decide/", {"ids": ids, "decision": "reject", "comment": "VPN"}, format="json"
    )
    assert response.status_code == 200
    assert sorted((a["id"], a["status"]) for a in response.json()) == [(pk, "rejected") for pk in sorted(ids)]


def test_undo_is_accepted_and_carried_out(operator, investigation, django_capture_on_commit_callbacks):
    action = approve_now(_action(investigation, Type.TURN_OFF_FORWARDING), operator)
    run_approved_action(action.pk)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client_for(operator).post(
            f"{ACTIONS}{action.pk}/undo/", {"comment": "legit"}, format="json"
        )
    assert response.status_code == 202
    action.refresh_from_db()
    assert action.status == Status.UNDONE


def test_a_manual_step_is_closed_through_the_api(operator, investigation, settings):
    settings.CONNECTOR_KINDS = {"builtin": "tests.investigations.fake_connectors.ManualConnector"}
    action = approve_now(_action(investigation, Type.REVOKE_SESSIONS), operator)
    run_approved_action(action.pk)
    client = api_client_for(operator)
    url = f"{ACTIONS}{action.pk}/manual-complete/"
    assert client.get(f"{ACTIONS}{action.pk}/").json()["manual_step"].startswith("In the identity provider")
    refused = client.post(url, {"done": False}, format="json")
    assert refused.status_code == 400 and "comment" in refused.json()["detail"]
    done = client.post(url, {"done": False, "comment": "No admin rights"}, format="json")
    assert done.status_code == 200 and done.json()["status"] == "failed"


def test_an_operator_stops_an_investigation(operator, investigation):
    response = api_client_for(operator).post(
        f"{INVESTIGATIONS}{investigation.pk}/stop/", {"comment": "Handled elsewhere"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "terminated_by_user"
    assert {a["status"] for a in response.json()["actions"]} == {"rejected"}


def test_a_read_token_sees_only_its_tenant_and_cannot_decide(
    client, administrator, tenant, other_tenant, investigation
):
    foreign = make_investigation(make_mailbox(other_tenant, "eve@other.example"))
    make_action(foreign, Type.REVOKE_SESSIONS)
    _, raw = create_api_token(tenant, actor=administrator, name="siem", scope=ApiToken.Scope.READ)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert [i["id"] for i in client.get(INVESTIGATIONS, **auth).json()["results"]] == [investigation.pk]
    assert client.get(f"{INVESTIGATIONS}{foreign.pk}/", **auth).status_code == 404
    assert client.get(ACTIONS, **auth).json()["count"] == 2
    action = _action(investigation, Type.REVOKE_SESSIONS)
    assert (
        client.post(f"{ACTIONS}{action.pk}/approve/", {}, content_type="application/json", **auth).status_code
        == 403
    )
