"""``GET /api/v1/messages/`` and ``/api/v1/mailboxes/``: readers and read tokens see; an ingest token reads
nothing.
"""

from __future__ import annotations

import pytest

from core.services import create_api_token
from mailboxes.models import AcceptedDomain
from mailflow.ingest import ingest_events

from .events import iso, mailbox_event, message

pytestmark = pytest.mark.django_db

READ_URLS = ["/api/v1/messages/", "/api/v1/mailboxes/"]


@pytest.fixture
def stored(accepted, other_tenant):
    AcceptedDomain.objects.create(tenant=other_tenant, domain="other.example")
    ingest_events(
        accepted,
        [
            mailbox_event("mb-1", "alice@example.com", display_name="Alice", department="Finance"),
            message(
                "m-1", "alice@example.com", ["x@partner.example.net"], verdict="phish", subject="Invoice"
            ),
            message("m-2", "bob@example.com", ["carol@example.com"], minutes=30, subject="Lunch"),
        ],
    )
    ingest_events(other_tenant, [message("o-1", "olga@other.example", ["x@partner.example.net"])])
    return accepted


@pytest.mark.parametrize("url", READ_URLS)
def test_an_ingest_token_cannot_read_anything(stored, ingest_token, token_client, url):
    assert token_client(ingest_token).get(url).status_code == 403


@pytest.mark.parametrize("url", READ_URLS)
def test_anonymous_callers_get_401(client, url):
    assert client.get(url).status_code == 401


@pytest.mark.parametrize("url", READ_URLS)
def test_a_signed_in_user_without_a_role_is_refused(nobody_client, url):
    assert nobody_client.get(url).status_code == 403


def test_a_reader_lists_messages_of_every_tenant_newest_first(stored, reader_client):
    body = reader_client.get("/api/v1/messages/").json()
    assert [m["event_id"] for m in body["results"]] == ["m-2", "o-1", "m-1"]
    first = body["results"][-1]
    assert (first["sender"], first["external_count"], first["verdict"], first["tenant"]) == (
        "alice@example.com",
        1,
        "phish",
        "default",
    )


def test_a_read_token_sees_its_own_tenant_only(stored, other_tenant, administrator, token_client):
    _, raw = create_api_token(other_tenant, actor=administrator, name="siem", scope="read")
    client = token_client(raw)
    assert [m["event_id"] for m in client.get("/api/v1/messages/").json()["results"]] == ["o-1"]
    assert [m["address"] for m in client.get("/api/v1/mailboxes/").json()["results"]] == [
        "olga@other.example"
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sender=ALICE@example.com", ["m-1"]),
        ("verdict=phish", ["m-1"]),
        (f"since={iso(10).replace('+', '%2B')}", ["m-2"]),
        ("external=true&tenant=default", ["m-1"]),
        ("q=lunch", ["m-2"]),
        ("tenant=other", ["o-1"]),
    ],
)
def test_messages_can_be_filtered(stored, reader_client, query, expected):
    body = reader_client.get(f"/api/v1/messages/?{query}").json()
    assert [m["event_id"] for m in body["results"]] == expected


def test_a_reader_reads_one_message(stored, reader_client):
    pk = reader_client.get("/api/v1/messages/?q=Invoice").json()["results"][0]["id"]
    assert reader_client.get(f"/api/v1/messages/{pk}/").json()["recipients"] == ["x@partner.example.net"]


def test_nobody_writes_messages_through_the_read_api(stored, administrator_client):
    response = administrator_client.post("/api/v1/messages/", {}, content_type="application/json")
    assert response.status_code == 403  # unsafe methods have no permission: denied before dispatch


def test_a_reader_lists_and_filters_mailboxes(stored, reader_client):
    body = reader_client.get("/api/v1/mailboxes/?tenant=default").json()
    assert [m["address"] for m in body["results"]] == ["alice@example.com", "bob@example.com"]
    response = reader_client.get("/api/v1/mailboxes/?department=Finance&vip=no")
    assert response.status_code == 200, response.json()
    finance = response.json()["results"]
    assert [(m["address"], m["display_name"], m["account_enabled"]) for m in finance] == [
        ("alice@example.com", "Alice", True)
    ]
