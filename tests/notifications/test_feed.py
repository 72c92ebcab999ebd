"""The SIEM change feed: every committed change once, in order, across pages and concurrent writers."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction
from django.urls import reverse

from core.models import ApiToken, ChangeFeedEntry, OutboxMessage
from core.services import create_api_token, publish_change
from tests.alerts.alert_builders import make_alert, make_mailbox

FEED = reverse("change-feed")


def page(client, cursor: str = "0", limit: int = 10, **headers) -> dict:
    response = client.get(FEED, {"cursor": cursor, "limit": limit}, **headers)
    assert response.status_code == 200, response.content
    return response.json()


def read_all(client, limit: int = 10) -> list[dict]:
    entries, cursor = [], "0"
    while True:
        body = page(client, cursor, limit)
        if not body["entries"]:
            assert body["next_cursor"] == cursor  # an empty page keeps the cursor
            return entries
        entries += body["entries"]
        cursor = body["next_cursor"]


@pytest.mark.django_db
def test_services_publish_each_change_to_the_feed_in_one_schema(tenant, reader_client):
    alice = make_mailbox(tenant, "alice@example.com")
    alert = make_alert(tenant, alice, kind="forwarding_rule")
    make_alert(tenant, alice, kind="forwarding_rule")  # folds into the same alert
    entries = read_all(reader_client)
    assert [e["kind"] for e in entries] == ["alert.raised", "alert.updated"]
    raised = entries[0]
    assert raised["schema"] == 1
    assert raised["tenant"] == "default"
    assert raised["target"] == {"type": "alerts.alert", "id": str(alert.pk)}
    assert raised["data"]["user"] == "alice@example.com"
    assert raised["data"]["severity"] == "informational"
    assert entries[1]["data"]["evidence_count"] == 2


@pytest.mark.django_db
def test_pages_return_every_entry_once_in_order(tenant, reader_client):
    for n in range(25):
        publish_change("test.change", target=tenant, payload={"n": n})
    entries = read_all(reader_client, limit=10)
    assert [e["data"]["n"] for e in entries] == list(range(25))
    assert [int(e["cursor"]) for e in entries] == sorted(int(e["cursor"]) for e in entries)


@pytest.mark.django_db
def test_a_rolled_back_change_leaves_no_feed_entry_nor_outbox_message(tenant, reader_client):
    alice = make_mailbox(tenant, "alice@example.com")
    with pytest.raises(RuntimeError), transaction.atomic():
        make_alert(tenant, alice, kind="forwarding_rule")
        raise RuntimeError("the surrounding change failed")
    assert not ChangeFeedEntry.objects.exists()
    assert not OutboxMessage.objects.exists()
    assert read_all(reader_client) == []


@pytest.mark.django_db
def test_a_read_token_sees_only_its_tenant(tenant, other_tenant, administrator, client):
    publish_change("test.change", target=tenant, payload={"n": 1})
    publish_change("test.change", target=other_tenant, payload={"n": 2})
    _, raw = create_api_token(other_tenant, actor=administrator, name="siem", scope=ApiToken.Scope.READ)
    body = page(client, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert [e["data"]["n"] for e in body["entries"]] == [2]


@pytest.mark.django_db
def test_the_feed_needs_a_role_or_a_read_token(tenant, administrator, nobody_client, client):
    _, ingest = create_api_token(tenant, actor=administrator, name="gw", scope=ApiToken.Scope.INGEST)
    assert client.get(FEED).status_code in (401, 403)
    assert nobody_client.get(FEED).status_code == 403
    assert client.get(FEED, HTTP_AUTHORIZATION=f"Bearer {ingest}").status_code == 403


@pytest.mark.django_db
def test_the_feed_speaks_cef(tenant, reader_client):
    publish_change("restriction.placed", target=tenant, payload={"user": "a|b=c@example.com"})
    response = reader_client.get(FEED, {"format": "cef"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    lines = response.content.decode().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("CEF:0|SOC Console|soc-console|1|restriction.placed|")
    assert "suser=a|b\\=c@example.com" in lines[0]
    assert response["X-Next-Cursor"] == "1"


def _publish_in_thread(
    tenant_id: int, n: int, started: threading.Event | None = None, release: threading.Event | None = None
) -> None:
    """Publish one change; with ``started`` / ``release``, say when it is written and hold the transaction
    open until the test releases it."""
    from core.models import Tenant

    try:
        with transaction.atomic():
            publish_change("test.change", target=Tenant.objects.get(pk=tenant_id), payload={"n": n})
            if started is not None:
                started.set()
            if release is not None:
                assert release.wait(30), "the test never released the slow writer"
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_an_entry_committed_after_a_newer_one_is_not_skipped(tenant, reader_client):
    started, release = threading.Event(), threading.Event()
    slow = threading.Thread(target=_publish_in_thread, args=(tenant.pk, 1, started, release))
    slow.start()
    assert started.wait(30)
    _publish_in_thread(tenant.pk, 2)  # a higher id, committed first
    first = page(reader_client)
    assert [e["data"]["n"] for e in first["entries"]] == [2]
    release.set()
    slow.join()
    second = page(reader_client, first["next_cursor"])
    assert [e["data"]["n"] for e in second["entries"]] == [1]
    assert int(second["entries"][0]["id"]) < int(first["entries"][0]["id"])


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_and_a_paging_reader_lose_and_repeat_nothing(tenant, reader_client):
    writers = [
        threading.Thread(target=lambda w=w: [_publish_in_thread(tenant.pk, w * 100 + i) for i in range(25)])
        for w in range(4)
    ]
    seen: list[dict] = []
    cursor = "0"
    for thread in writers:
        thread.start()
    while any(thread.is_alive() for thread in writers):
        body = page(reader_client, cursor, limit=7)
        seen += body["entries"]
        cursor = body["next_cursor"]
    for thread in writers:
        thread.join()
    while body := page(reader_client, cursor, limit=7):
        if not body["entries"]:
            break
        seen += body["entries"]
        cursor = body["next_cursor"]
    numbers = [e["data"]["n"] for e in seen]
    assert sorted(numbers) == sorted(w * 100 + i for w in range(4) for i in range(25))
    assert len(set(numbers)) == len(numbers) == 100
    positions = [int(e["cursor"]) for e in seen]
    assert positions == sorted(positions)


@pytest.mark.django_db
def test_a_feed_entry_is_the_document_webhooks_carry(tenant, reader_client):
    entry = publish_change("test.change", target=tenant, payload={"n": 1})
    served = page(reader_client)["entries"][0]
    document = OutboxMessage.objects.get(change=entry).payload
    assert {k: v for k, v in served.items() if k != "cursor"} == document
