"""The ingest service: atomic batches, idempotency by event id, first-sight mailboxes, bulk writes."""

from __future__ import annotations

import pytest

from mailboxes.models import AcceptedDomain, Delegation, DirectoryChange, InboxRule, Mailbox, SignIn
from mailflow.ingest import LENIENT, ingest_events
from mailflow.models import IngestedEvent, MessageEvent

from .events import at, delegation, forwarding, inbox_rule, mailbox_event, message, messages, sign_in

pytestmark = pytest.mark.django_db

ALICE = "alice@example.com"


def test_a_valid_batch_is_stored_and_counted(accepted):
    result = ingest_events(accepted, messages(5))
    assert (result.accepted, result.duplicates, result.conflicts, result.errors) == (5, 0, [], [])
    assert MessageEvent.objects.filter(tenant=accepted).count() == 5
    assert IngestedEvent.objects.filter(tenant=accepted, type="message").count() == 5


def test_a_bad_event_at_index_999_of_1000_leaves_nothing_stored(accepted):
    batch = messages(1000)
    batch[999]["recipients"] = ["not an address"]
    result = ingest_events(accepted, batch)
    assert result.accepted == 0
    assert result.errors == [{"index": 999, "field": "recipients[0]", "error": result.errors[0]["error"]}]
    assert not MessageEvent.objects.exists()
    assert not IngestedEvent.objects.exists()
    assert not Mailbox.objects.exists()


def test_lenient_mode_rejects_invalid_events_alone_and_stores_the_rest(accepted):
    batch = messages(4)
    batch[1]["verdict"] = "evil"
    batch[3]["sender"] = "eve@elsewhere.example.org"
    result = ingest_events(accepted, batch, mode=LENIENT, source="connector")
    assert result.accepted == 2
    assert result.rejected == 2
    assert [e["index"] for e in result.errors] == [1, 3]
    assert set(MessageEvent.objects.values_list("event_id", flat=True)) == {"m-0", "m-2"}


def test_resending_the_same_events_counts_duplicates_and_stores_nothing_new(accepted):
    ingest_events(accepted, messages(3))
    again = ingest_events(accepted, messages(3))
    assert (again.accepted, again.duplicates, again.conflicts) == (0, 3, [])
    assert MessageEvent.objects.count() == 3


def test_the_same_event_in_another_spelling_is_a_duplicate_not_a_conflict(accepted):
    ingest_events(accepted, [message("m-1", ALICE, ["bob@example.com"])])
    respelled = message("m-1", "Alice@EXAMPLE.com", ["BOB@example.com"], time="2025-03-03T10:00:00+01:00")
    result = ingest_events(accepted, [{**respelled, "unknown": 1}])
    assert (result.accepted, result.duplicates, result.conflicts) == (0, 1, [])


def test_the_same_id_with_other_content_is_a_conflict_that_is_reported_and_not_stored(accepted):
    ingest_events(accepted, [message("m-1", subject="hello")])
    result = ingest_events(accepted, [message("m-1", subject="changed"), message("m-2")])
    assert (result.accepted, result.duplicates, result.conflicts) == (1, 0, ["m-1"])
    assert MessageEvent.objects.get(event_id="m-1").subject == "hello"
    assert MessageEvent.objects.filter(event_id="m-2").exists()


def test_ids_are_shared_by_every_event_type(accepted):
    ingest_events(accepted, [message("e-1")])
    result = ingest_events(accepted, [sign_in("e-1", ALICE)])
    assert result.conflicts == ["e-1"]
    assert not SignIn.objects.exists()


def test_a_repeated_id_with_the_same_content_inside_one_batch_is_a_duplicate(accepted):
    result = ingest_events(accepted, [message("m-1", subject="a"), message("m-1", subject="a")])
    assert (result.accepted, result.duplicates, result.conflicts) == (1, 1, [])


def test_a_repeated_id_with_other_content_inside_one_batch_is_a_reported_conflict(accepted):
    result = ingest_events(accepted, [message("m-1", subject="a"), message("m-1", subject="b")])
    assert (result.accepted, result.duplicates, result.conflicts) == (1, 0, ["m-1"])
    assert result.summary()["conflicts"] == 1
    assert MessageEvent.objects.get(event_id="m-1").subject == "a"


def test_ids_are_unique_per_tenant_not_globally(accepted, other_tenant):
    AcceptedDomain.objects.create(tenant=other_tenant, domain="example.com")
    ingest_events(accepted, [message("m-1")])
    result = ingest_events(other_tenant, [message("m-1")])
    assert result.accepted == 1
    assert MessageEvent.objects.filter(event_id="m-1").count() == 2


def test_a_sender_in_an_accepted_domain_becomes_a_mailbox_on_first_sight(accepted):
    ingest_events(
        accepted, [message("m-2", "New.Hire@example.com", minutes=5), message("m-1", "new.hire@example.com")]
    )
    mailbox = Mailbox.objects.get(tenant=accepted, address="new.hire@example.com")
    assert mailbox.first_seen == at(0)
    created = DirectoryChange.objects.get(mailbox=mailbox)
    assert (created.kind, created.operation, created.event_id) == ("mailbox", "created", "m-1")


def test_an_older_event_moves_first_seen_back(accepted):
    ingest_events(accepted, [message("m-late", minutes=30)])
    ingest_events(accepted, [sign_in("s-early", ALICE, minutes=-30)])
    assert Mailbox.objects.get(address=ALICE).first_seen == at(-30)


def test_each_owner_field_creates_its_mailbox_on_first_sight(accepted):
    ingest_events(
        accepted,
        [
            inbox_rule("r-1", "r@example.com", "rule-1", "created"),
            forwarding("f-1", "f@example.com", None),
            delegation("d-1", "d@example.com", "helper@partner.example.net", "send_as", "added"),
            sign_in("s-1", "s@example.com"),
            mailbox_event("mb-1", "m@example.com"),
        ],
    )
    assert set(Mailbox.objects.values_list("address", flat=True)) == {
        "r@example.com",
        "f@example.com",
        "d@example.com",
        "s@example.com",
        "m@example.com",
    }
    assert not Mailbox.objects.filter(address="helper@partner.example.net").exists()


def test_a_sender_outside_the_accepted_domains_is_an_error_and_nothing_is_stored(accepted):
    result = ingest_events(accepted, [message("m-1"), message("m-2", "eve@elsewhere.example.org")])
    assert [(e["index"], e["field"]) for e in result.errors] == [(1, "sender")]
    assert not MessageEvent.objects.exists()


def test_mailbox_events_declare_accepted_domains_and_set_attributes(tenant):
    result = ingest_events(
        tenant,
        [
            message("m-1", "ann@newco.example", ["zed@newco.example", "x@partner.example.net"]),
            mailbox_event("mb-1", "Ann@NewCo.example", display_name="Ann", department="Sales", vip=True),
        ],
    )
    assert result.accepted == 2
    assert AcceptedDomain.objects.get(tenant=tenant).domain == "newco.example"
    ann = Mailbox.objects.get(address="ann@newco.example")
    assert (ann.display_name, ann.department, ann.vip) == ("Ann", "Sales", True)
    sent = MessageEvent.objects.get(event_id="m-1")
    assert (sent.internal_count, sent.external_count, sent.external_domains) == (
        1,
        1,
        ["partner.example.net"],
    )


def test_recipients_are_split_into_internal_and_external_by_accepted_domain(accepted):
    recipients = ["bob@example.com", "Carol@Example.com", "x@partner.example.net", "y@other.example.org"]
    ingest_events(accepted, [message("m-1", ALICE, recipients + ["BOB@example.com"])])
    sent = MessageEvent.objects.get(event_id="m-1")
    assert sent.recipients == [
        "bob@example.com",
        "carol@example.com",
        "x@partner.example.net",
        "y@other.example.org",
    ]
    assert (sent.recipient_count, sent.internal_count, sent.external_count) == (4, 2, 2)
    assert sent.external_domains == ["other.example.org", "partner.example.net"]


def test_message_fields_are_stored_as_sent(accepted):
    ingest_events(
        accepted,
        [
            message(
                "m-1",
                subject="Invoice",
                verdict="phish",
                urls=["https://evil.example.org/a"],
                size=1234,
                client_ip="2001:DB8:0:0::1",
                internet_message_id="<x@example.com>",
                body_hash="abc",
            )
        ],
    )
    sent = MessageEvent.objects.select_related("sender").get(event_id="m-1")
    assert sent.sender.address == ALICE
    assert (sent.subject, sent.verdict, sent.urls, sent.size) == (
        "Invoice",
        "phish",
        ["https://evil.example.org/a"],
        1234,
    )
    assert (sent.client_ip, sent.internet_message_id, sent.body_hash, sent.time) == (
        "2001:db8::1",
        "<x@example.com>",
        "abc",
        at(0),
    )


def test_sign_ins_are_stored_for_their_user(accepted):
    ingest_events(
        accepted, [sign_in("s-1", ALICE, "203.0.113.5", country="de", client_app="imap", result="failure")]
    )
    stored = SignIn.objects.get(event_id="s-1")
    assert (stored.mailbox.address, stored.ip, stored.country, stored.client_app, stored.result) == (
        ALICE,
        "203.0.113.5",
        "DE",
        "imap",
        "failure",
    )


def test_the_result_names_the_affected_mailboxes_and_the_event_time_range(accepted):
    result = ingest_events(
        accepted,
        [
            message("m-1", minutes=10),
            sign_in("s-1", "bob@example.com", minutes=-5),
            message("m-2", minutes=3),
        ],
    )
    ids = set(Mailbox.objects.filter(address__in=[ALICE, "bob@example.com"]).values_list("pk", flat=True))
    assert result.affected_mailbox_ids == ids
    assert result.time_range == (at(-5), at(10))


def test_duplicates_do_not_count_as_affected(accepted):
    ingest_events(accepted, [message("m-1")])
    result = ingest_events(accepted, [message("m-1")])
    assert result.affected_mailbox_ids == set()
    assert result.time_range is None


def test_the_after_commit_hook_runs_once_per_stored_batch(accepted, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        ingest_events(accepted, messages(3))
    assert len(callbacks) == 1
    with django_capture_on_commit_callbacks() as callbacks:
        ingest_events(accepted, messages(3))  # all duplicates: nothing to evaluate
    assert callbacks == []


def test_directory_events_of_a_batch_are_applied_in_event_time_order(accepted):
    ingest_events(
        accepted,
        [
            inbox_rule("r-2", ALICE, "rule-1", "deleted", minutes=2),
            inbox_rule(
                "r-1",
                ALICE,
                "rule-1",
                "created",
                minutes=1,
                name="Fwd",
                actions={"forward_to": "x@evil.example"},
            ),
            delegation("d-2", ALICE, "bob@example.com", "full_access", "removed", minutes=4),
            delegation("d-1", ALICE, "bob@example.com", "full_access", "added", minutes=3),
        ],
    )
    assert not InboxRule.objects.present().exists()
    assert not Delegation.objects.present().exists()
    assert list(
        DirectoryChange.objects.filter(kind="inbox_rule").timeline().values_list("operation", flat=True)
    ) == [
        "created",
        "deleted",
    ]


def _mixed_batch(size: int, prefix: str) -> list[dict]:
    """Mostly messages, some sign-ins and directory changes, from 50 mailboxes most of which are new."""
    events = []
    for n in range(size):
        user = f"user{n % 50}@example.com"
        kind = n % 20
        if kind == 0:
            events.append(sign_in(f"{prefix}-{n}", user, minutes=n))
        elif kind == 1:
            events.append(inbox_rule(f"{prefix}-{n}", user, f"rule-{n % 7}", "created", minutes=n, name="r"))
        elif kind == 2:
            events.append(forwarding(f"{prefix}-{n}", user, "out@partner.example.net", minutes=n))
        elif kind == 3:
            events.append(
                delegation(f"{prefix}-{n}", user, "helper@example.com", "send_as", "added", minutes=n)
            )
        elif kind == 4:
            events.append(mailbox_event(f"{prefix}-{n}", user, minutes=n, display_name=f"User {n}"))
        else:
            events.append(
                message(f"{prefix}-{n}", user, ["bob@example.com", "x@partner.example.net"], minutes=n)
            )
    return events


@pytest.mark.parametrize("size", [1000, 3000])
def test_a_batch_runs_a_bounded_number_of_queries_whatever_its_size(
    accepted, django_assert_max_num_queries, size
):
    ingest_events(accepted, _mixed_batch(100, "warm"))  # some mailboxes and rules exist already
    with django_assert_max_num_queries(30):
        result = ingest_events(accepted, _mixed_batch(size, f"b{size}"))
    assert result.accepted == size
    assert result.errors == []


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_batches_with_the_same_ids_store_each_event_once(tenant):
    import threading

    from django.db import connection

    from core.models import Tenant
    from mailboxes.services import declare_accepted_domains

    declare_accepted_domains(tenant, ["example.com"])
    batch = messages(2000)
    start = threading.Barrier(2)
    results, failures = [], []

    def ingest() -> None:
        try:
            start.wait()
            results.append(ingest_events(Tenant.objects.get(pk=tenant.pk), batch))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ingest) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted((r.accepted, r.duplicates) for r in results) == [(0, 2000), (2000, 0)]
    assert MessageEvent.objects.count() == 2000
