"""``POST /api/v1/events/``: JSON or NDJSON batches, all or nothing, limits, and who may write where."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from core.models import ApiToken
from core.services import create_api_token, revoke_api_token
from mailboxes.models import AcceptedDomain
from mailflow.models import IngestedEvent, MessageEvent

from .events import message, messages

pytestmark = pytest.mark.django_db

URL = "/api/v1/events/"


def post_json(client, events, url: str = URL, **extra):
    return client.post(url, data=json.dumps(events), content_type="application/json", **extra)


def post_ndjson(client, body: str, url: str = URL, **extra):
    return client.post(url, data=body, content_type="application/x-ndjson", **extra)


def ndjson(events: list) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def test_an_ingest_token_stores_a_json_array_and_gets_the_counts(accepted, ingest_token, token_client):
    response = post_json(token_client(ingest_token), messages(3))
    assert response.status_code == 201
    assert response.json() == {
        "accepted": 3,
        "duplicates": 0,
        "conflicts": 0,
        "conflicting_ids": [],
        "warnings": [],
    }
    assert MessageEvent.objects.filter(tenant=accepted).count() == 3


def test_ndjson_is_accepted_and_blank_lines_are_ignored(accepted, ingest_token, token_client):
    body = ndjson(messages(2)) + "\n\r\n" + ndjson(messages(1, prefix="n"))
    response = post_ndjson(token_client(ingest_token), body)
    assert response.status_code == 201
    assert response.json()["accepted"] == 3


def test_a_resent_batch_is_all_duplicates_and_answers_200(accepted, ingest_token, token_client):
    client = token_client(ingest_token)
    post_json(client, messages(3))
    response = post_json(client, messages(3))
    assert response.status_code == 200
    assert (response.json()["accepted"], response.json()["duplicates"]) == (0, 3)


def test_conflicting_ids_are_counted_and_listed(accepted, ingest_token, token_client):
    client = token_client(ingest_token)
    post_json(client, [message("m-1", subject="a")])
    body = post_json(client, [message("m-1", subject="b"), message("m-2")]).json()
    assert (body["accepted"], body["conflicts"], body["conflicting_ids"]) == (1, 1, ["m-1"])


def test_a_bad_event_at_index_999_of_1000_answers_400_and_stores_nothing(
    accepted, ingest_token, token_client
):
    batch = messages(1000)
    batch[999]["verdict"] = "dangerous"
    response = post_json(token_client(ingest_token), batch)
    assert response.status_code == 400
    body = response.json()
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(999, "verdict")]
    assert body["warnings"] == []
    assert not MessageEvent.objects.exists()
    assert not IngestedEvent.objects.exists()


def test_ndjson_errors_also_name_their_line(accepted, ingest_token, token_client):
    body = ndjson([message("m-1")]) + "\n" + ndjson([{**message("m-2"), "size": "big"}])
    response = post_ndjson(token_client(ingest_token), body)
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"index": 1, "field": "size", "error": response.json()["errors"][0]["error"], "line": 3}
    ]


def test_unknown_fields_are_stored_without_them_and_reported_as_warnings(
    accepted, ingest_token, token_client
):
    response = post_json(token_client(ingest_token), [message("m-1", priority="high")])
    assert response.status_code == 201
    assert response.json()["warnings"] == [
        {"index": 0, "field": "priority", "warning": "unknown field, ignored"}
    ]


def test_warnings_are_returned_with_the_errors_of_a_refused_batch(accepted, ingest_token, token_client):
    response = post_json(
        token_client(ingest_token), [message("m-1", priority="high"), message("m-2", size=-1)]
    )
    assert response.status_code == 400
    assert [w["field"] for w in response.json()["warnings"]] == ["priority"]


def test_bad_json_answers_400_with_the_line_number(accepted, ingest_token, token_client):
    body = '[\n{"id": "m-1",\n"type": "message"\n'
    response = token_client(ingest_token).post(URL, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["line"] == 4
    assert "line 4" in response.json()["detail"]


def test_bad_ndjson_answers_400_with_the_line_number(accepted, ingest_token, token_client):
    body = ndjson([message("m-1")]) + "{not json}\n"
    response = post_ndjson(token_client(ingest_token), body)
    assert response.status_code == 400
    assert response.json()["line"] == 2
    assert not MessageEvent.objects.exists()


def test_a_json_object_instead_of_an_array_is_refused(accepted, ingest_token, token_client):
    response = post_json(token_client(ingest_token), message("m-1"))
    assert response.status_code == 400
    assert "JSON array" in response.json()["detail"]


def test_an_unsupported_content_type_is_refused(accepted, ingest_token, token_client):
    response = token_client(ingest_token).post(URL, data="id=1", content_type="text/plain")
    assert response.status_code == 415


def test_more_events_than_the_limit_answer_413_naming_it(accepted, ingest_token, token_client, settings):
    settings.INGEST_MAX_EVENTS = 10
    response = post_json(token_client(ingest_token), messages(11))
    assert response.status_code == 413
    assert response.json()["limit"] == "INGEST_MAX_EVENTS"
    assert "INGEST_MAX_EVENTS" in response.json()["detail"]
    assert not MessageEvent.objects.exists()
    assert post_json(token_client(ingest_token), messages(10)).status_code == 201


def test_a_body_above_the_byte_limit_answers_413_naming_it(accepted, ingest_token, token_client, settings):
    body = ndjson(messages(50))
    settings.INGEST_MAX_BYTES = len(body.encode()) - 1
    response = post_ndjson(token_client(ingest_token), body)
    assert response.status_code == 413
    assert response.json()["limit"] == "INGEST_MAX_BYTES"
    settings.INGEST_MAX_BYTES = len(body.encode())
    assert post_ndjson(token_client(ingest_token), body).status_code == 201


def test_the_default_limits_allow_a_request_above_djangos_upload_limit(accepted, ingest_token, token_client):
    batch = [message(f"m-{n}", subject="s" * 900) for n in range(3000)]  # about 3 MB
    response = post_json(token_client(ingest_token), batch)
    assert response.status_code == 201
    assert response.json()["accepted"] == 3000


def test_without_credentials_the_answer_is_401(client, accepted):
    assert post_json(client, messages(1)).status_code == 401


def test_an_unknown_token_is_refused_with_401(client, accepted, token_client):
    assert post_json(token_client("soc_deadbeef_not-a-real-token"), messages(1)).status_code == 401


def test_a_revoked_token_is_refused_with_401(accepted, administrator, token_client):
    token, raw = create_api_token(accepted, actor=administrator, name="old", scope="ingest")
    revoke_api_token(token, actor=administrator)
    assert post_json(token_client(raw), messages(1)).status_code == 401
    assert not MessageEvent.objects.exists()


def test_a_token_writes_to_its_own_tenant(accepted, other_tenant, administrator, token_client):
    AcceptedDomain.objects.create(tenant=other_tenant, domain="example.com")
    _, raw = create_api_token(other_tenant, actor=administrator, name="other", scope="ingest")
    assert post_json(token_client(raw), messages(2)).status_code == 201
    assert post_json(token_client(raw), messages(1, prefix="x"), url=f"{URL}?tenant=other").status_code == 201
    assert MessageEvent.objects.filter(tenant=other_tenant).count() == 3
    assert not MessageEvent.objects.filter(tenant=accepted).exists()


def test_a_token_naming_another_tenant_is_refused_with_403(
    accepted, other_tenant, ingest_token, token_client
):
    response = post_json(token_client(ingest_token), messages(1), url=f"{URL}?tenant=other")
    assert response.status_code == 403
    assert not MessageEvent.objects.exists()


def test_a_read_token_cannot_ingest(accepted, administrator, token_client):
    _, raw = create_api_token(accepted, actor=administrator, name="siem", scope="read")
    assert post_json(token_client(raw), messages(1)).status_code == 403


def test_an_administrator_session_ingests_into_the_default_tenant(accepted, administrator_client):
    assert post_json(administrator_client, messages(2)).status_code == 201
    assert MessageEvent.objects.filter(tenant=accepted).count() == 2


def test_an_administrator_may_name_a_tenant(accepted, other_tenant, administrator_client):
    AcceptedDomain.objects.create(tenant=other_tenant, domain="example.com")
    assert post_json(administrator_client, messages(2), url=f"{URL}?tenant=other").status_code == 201
    assert MessageEvent.objects.filter(tenant=other_tenant).count() == 2
    assert post_json(administrator_client, messages(1), url=f"{URL}?tenant=nope").status_code == 400


@pytest.mark.parametrize("persona", ["reader_client", "operator_client", "nobody_client"])
def test_reader_operator_and_roleless_sessions_cannot_ingest(accepted, request, persona):
    client = request.getfixturevalue(persona)
    assert post_json(client, messages(1)).status_code == 403
    assert not MessageEvent.objects.exists()


def test_using_a_token_records_when_it_was_last_used(accepted, ingest_token, token_client):
    post_json(token_client(ingest_token), messages(1))
    token = ApiToken.objects.get(name="gateway")
    assert token.last_used_at is not None and token.last_used_at <= timezone.now()
