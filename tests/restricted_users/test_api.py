"""/api/v1/restrictions/: the same permissions as the console; tokens see only their tenant."""

import pytest
import time_machine
from rest_framework.test import APIClient

from core.services import create_api_token
from restricted_users.models import Restriction
from tests.builders import api_client_for

from .conftest import ALL_ATTESTED, MORNING

pytestmark = pytest.mark.django_db

URL = "/api/v1/restrictions/"


def release_url(restriction) -> str:
    return f"{URL}{restriction.pk}/release/"


def test_anonymous_callers_are_refused(client, mailbox, restrict):
    restriction = restrict(mailbox)
    assert client.get(URL).status_code in (401, 403)
    assert client.post(release_url(restriction), {}, content_type="application/json").status_code in (
        401,
        403,
    )


def test_a_user_without_a_role_reads_nothing(nobody, mailbox, restrict):
    restrict(mailbox)
    assert api_client_for(nobody).get(URL).status_code == 403


@time_machine.travel(MORNING, tick=False)
def test_a_reader_lists_and_filters_restrictions(reader, make_mailbox, restrict, administrator):
    from restricted_users import services

    alice, bob = make_mailbox("alice@example.com"), make_mailbox("bob@example.com")
    kept = restrict(alice)
    services.release_user(restrict(bob), actor=administrator, reason="Clean", attestations=ALL_ATTESTED)
    client = api_client_for(reader)
    body = client.get(URL).json()
    assert body["count"] == 2
    active = client.get(URL, {"state": "active"}).json()["results"]
    assert [(r["id"], r["address"], r["state"]) for r in active] == [(kept.pk, "alice@example.com", "active")]
    assert active[0]["reason"]["count"] == 612
    released = client.get(URL, {"state": "released"}).json()["results"]
    assert [(r["address"], r["released_by"]) for r in released] == [
        ("bob@example.com", administrator.username)
    ]
    assert client.get(URL, {"mailbox": alice.pk}).json()["count"] == 1
    assert client.get(f"{URL}{kept.pk}/").json()["policy_name"] == "Email sending limit exceeded"


def test_a_read_token_sees_only_its_tenant_and_cannot_write(
    administrator, make_mailbox, restrict, other_tenant, tenant
):
    mine = restrict(make_mailbox("alice@example.com"))
    theirs = restrict(make_mailbox("eve@example.org", tenant_=other_tenant))
    _, raw = create_api_token(tenant, actor=administrator, name="siem", scope="read")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert [r["id"] for r in client.get(URL).json()["results"]] == [mine.pk]
    assert client.get(URL, {"tenant": "other"}).json()["count"] == 0
    assert client.get(f"{URL}{theirs.pk}/").status_code == 404
    assert client.post(release_url(mine), {"reason": "x"}, format="json").status_code == 403
    assert Restriction.objects.active().count() == 2


@pytest.mark.parametrize("persona", ["reader", "operator"])
def test_only_administrators_release_or_restrict(request, persona, mailbox, restrict, make_mailbox):
    client = api_client_for(request.getfixturevalue(persona))
    restriction = restrict(mailbox)
    body = {"reason": "Clean", "attestations": ALL_ATTESTED}
    assert client.post(release_url(restriction), body, format="json").status_code == 403
    other = make_mailbox("bob@example.com")
    assert client.post(URL, {"mailbox": other.pk, "reason": "x"}, format="json").status_code == 403
    assert list(Restriction.objects.active()) == [restriction]


@time_machine.travel(MORNING, tick=False)
def test_an_administrator_releases_through_the_api(administrator, mailbox, restrict):
    client = api_client_for(administrator)
    restriction = restrict(mailbox)
    response = client.post(
        release_url(restriction), {"reason": "Clean", "attestations": ALL_ATTESTED}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["state"] == "released"
    assert response.json()["checklist"]["sessions_revoked"]["state"] == "attested"
    assert not Restriction.objects.active().exists()


@time_machine.travel(MORNING, tick=False)
def test_domain_errors_are_400_with_a_detail(administrator, mailbox, restrict):
    client = api_client_for(administrator)
    restriction = restrict(mailbox)
    no_reason = client.post(release_url(restriction), {"attestations": ALL_ATTESTED}, format="json")
    assert no_reason.status_code == 400
    assert "reason" in no_reason.json()["detail"]
    partial = client.post(
        release_url(restriction), {"reason": "Clean", "attestations": {"password_reset": True}}, format="json"
    )
    assert partial.status_code == 400
    assert "MFA enforced" in partial.json()["detail"]
    assert Restriction.objects.active().get() == restriction


def test_an_administrator_restricts_by_hand_by_id_or_address(administrator, mailbox):
    client = api_client_for(administrator)
    created = client.post(URL, {"address": "ALICE@example.com", "reason": "Phished"}, format="json")
    assert created.status_code == 201
    assert created.json()["source"] == "manual"
    assert created.json()["expires_at"] is None
    again = client.post(URL, {"mailbox": mailbox.pk, "reason": "Phished again"}, format="json")
    assert again.status_code == 200
    assert again.json()["id"] == created.json()["id"]
    assert client.post(URL, {"mailbox": mailbox.pk, "reason": ""}, format="json").status_code == 400
    assert (
        client.post(URL, {"address": "nobody@example.com", "reason": "x"}, format="json").status_code == 400
    )
