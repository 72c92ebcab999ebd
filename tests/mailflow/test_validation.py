"""Contract v1 validation: every field's bad forms are rejected with a message naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from mailboxes.models import Mailbox
from mailflow.ingest import ingest_events, validate_events
from mailflow.models import IngestedEvent, MessageEvent

from .events import delegation, forwarding, inbox_rule, iso, mailbox_event, message, sign_in

pytestmark = pytest.mark.django_db

ALICE = "alice@example.com"


def without(event: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != name}


def full_events() -> list[dict[str, Any]]:
    """One event of every type with every documented field filled in."""
    return [
        mailbox_event("mb-1", ALICE, display_name="Alice Liddell", department="Finance", vip=True),
        message(
            "msg-1",
            ALICE,
            ["bob@example.com", "Carol@Partner.example.net"],
            subject="Invoice 42",
            verdict="phish",
            urls=["https://evil.example.org/login"],
            size=20480,
            client_ip="2001:db8::1",
            internet_message_id="<42@example.com>",
            body_hash="ab12",
        ),
        inbox_rule(
            "rule-1",
            ALICE,
            "r-1",
            "created",
            name="Move invoices",
            conditions={"subject_contains": ["invoice", "payment"], "from": "boss@example.com"},
            actions={"forward_to": "x@evil.example.org", "move_to_folder": "RSS Feeds", "mark_as_read": True},
            enabled=True,
        ),
        forwarding("fwd-1", ALICE, "out@evil.example.org", keep_copy=False),
        delegation("del-1", ALICE, "mallory@evil.example.org", "send_as", "added"),
        sign_in(
            "si-1",
            ALICE,
            "203.0.113.9",
            country="nl",
            client_app="imap",
            result="success",
            user_agent="Thunderbird/115",
        ),
    ]


def test_a_complete_event_of_every_type_passes_without_errors_or_warnings(accepted):
    report = validate_events(accepted, full_events())
    assert report.errors == []
    assert report.warnings == []
    assert [e.type for e in report.events] == [
        "mailbox",
        "message",
        "inbox_rule",
        "forwarding",
        "delegation",
        "sign_in",
    ]


def test_validation_normalises_addresses_times_and_codes(accepted):
    events = {e.id: e for e in validate_events(accepted, full_events()).events}
    assert events["msg-1"].data["recipients"] == ["bob@example.com", "carol@partner.example.net"]
    assert events["si-1"].data["country"] == "NL"
    assert events["rule-1"].data["actions"]["forward_to"] == ["x@evil.example.org"]
    assert events["rule-1"].data["conditions"]["from"] == ["boss@example.com"]
    shifted = message("msg-tz", ALICE, time="2025-03-03T11:00:00+02:00")
    assert validate_events(accepted, [shifted]).events[0].data["time"] == iso(0)


A = message("m-1", ALICE)
R = inbox_rule("r-1", ALICE, "rule-1", "created")
F = forwarding("f-1", ALICE, "out@partner.example.net")
D = delegation("d-1", ALICE, "bob@example.com", "full_access", "added")
S = sign_in("s-1", ALICE)
M = mailbox_event("mb-1", ALICE)

BAD_FORMS = [
    # id
    (without(A, "id"), "id", "is required"),
    ({**A, "id": ""}, "id", "non-empty string"),
    ({**A, "id": "   "}, "id", "non-empty string"),
    ({**A, "id": 17}, "id", "non-empty string"),
    ({**A, "id": "x" * 201}, "id", "at most 200"),
    # type
    (without(A, "type"), "type", "is required"),
    ({**A, "type": "email"}, "type", "unknown event type"),
    ({**A, "type": 3}, "type", "unknown event type"),
    # time
    (without(A, "time"), "time", "is required"),
    ({**A, "time": None}, "time", "is required, got null"),
    ({**A, "time": "2025-03-03T09:00:00"}, "time", "UTC offset"),
    ({**A, "time": "2025-03-03"}, "time", "UTC offset"),
    ({**A, "time": "yesterday"}, "time", "ISO 8601"),
    ({**A, "time": "2025-13-03T09:00:00Z"}, "time", "ISO 8601"),
    ({**A, "time": 1741000000}, "time", "ISO 8601"),
    ({**A, "time": "0001-01-01T00:00:00+05:00"}, "time", "out of range"),
    # message
    (without(A, "sender"), "sender", "is required"),
    ({**A, "sender": "alice"}, "sender", "not a valid email address"),
    ({**A, "sender": "alice@@example.com"}, "sender", "not a valid email address"),
    ({**A, "sender": ["alice@example.com"]}, "sender", "got an array"),
    (without(A, "recipients"), "recipients", "is required"),
    ({**A, "recipients": []}, "recipients", "must not be empty"),
    ({**A, "recipients": "bob@example.com"}, "recipients", "must be an array"),
    ({**A, "recipients": ["bob@example.com", "not an address"]}, "recipients[1]", "not a valid email"),
    ({**A, "recipients": ["bob@example.com", 7]}, "recipients[1]", "got a number"),
    ({**A, "subject": 12}, "subject", "must be a string"),
    ({**A, "subject": "s" * 1001}, "subject", "at most 1000"),
    ({**A, "verdict": "evil"}, "verdict", "one of clean, spam, bulk, phish, malware"),
    ({**A, "verdict": ""}, "verdict", "one of clean"),
    ({**A, "urls": "https://x.example"}, "urls", "must be an array"),
    ({**A, "urls": ["https://ok.example", 5]}, "urls[1]", "must be a string"),
    ({**A, "urls": [""]}, "urls[0]", "non-empty string"),
    ({**A, "urls": ["https://x.example/" + "a" * 2048]}, "urls[0]", "at most 2048"),
    ({**A, "size": -1}, "size", "between 0"),
    ({**A, "size": "2048"}, "size", "whole number"),
    ({**A, "size": 1.5}, "size", "whole number"),
    ({**A, "size": True}, "size", "whole number"),
    ({**A, "client_ip": "999.1.1.1"}, "client_ip", "not a valid IPv4 or IPv6"),
    ({**A, "client_ip": "fe80::1%eth0"}, "client_ip", "not a valid IPv4 or IPv6"),
    ({**A, "client_ip": 10}, "client_ip", "IPv4 or IPv6 address (a string)"),
    ({**A, "internet_message_id": "i" * 999}, "internet_message_id", "at most 998"),
    ({**A, "body_hash": "h" * 129}, "body_hash", "at most 128"),
    # mailbox
    (without(M, "address"), "address", "is required"),
    ({**M, "address": "alice@"}, "address", "not a valid email address"),
    ({**M, "display_name": "d" * 201}, "display_name", "at most 200"),
    ({**M, "department": ["Finance"]}, "department", "must be a string"),
    ({**M, "vip": "yes"}, "vip", "true or false"),
    ({**M, "vip": 1}, "vip", "true or false"),
    # inbox rule
    (without(R, "mailbox"), "mailbox", "is required"),
    (without(R, "rule_id"), "rule_id", "is required"),
    ({**R, "rule_id": ""}, "rule_id", "non-empty string"),
    (without(R, "operation"), "operation", "is required"),
    ({**R, "operation": "renamed"}, "operation", "one of created, updated, deleted"),
    ({**R, "name": "n" * 256}, "name", "at most 255"),
    ({**R, "conditions": "subject contains invoice"}, "conditions", "must be an object"),
    ({**R, "conditions": ["invoice"]}, "conditions", "must be an object"),
    ({**R, "conditions": {"subject_contains": 5}}, "conditions.subject_contains", "must be a string"),
    ({**R, "conditions": {"body_contains": []}}, "conditions.body_contains", "must not be empty"),
    ({**R, "actions": []}, "actions", "must be an object"),
    ({**R, "actions": {"forward_to": "nobody"}}, "actions.forward_to", "not a valid email address"),
    ({**R, "actions": {"redirect_to": ["a@x.example", "b"]}}, "actions.redirect_to[1]", "not a valid email"),
    ({**R, "actions": {"delete": "yes"}}, "actions.delete", "true or false"),
    ({**R, "actions": {"move_to_folder": ""}}, "actions.move_to_folder", "non-empty string"),
    ({**R, "enabled": "true"}, "enabled", "true or false"),
    # forwarding
    (without(F, "mailbox"), "mailbox", "is required"),
    ({**F, "forward_to": "out at partner"}, "forward_to", "not a valid email address"),
    ({**F, "keep_copy": 0}, "keep_copy", "true or false"),
    # delegation
    (without(D, "delegate"), "delegate", "is required"),
    ({**D, "delegate": "bob"}, "delegate", "not a valid email address"),
    (without(D, "access"), "access", "is required"),
    ({**D, "access": "owner"}, "access", "one of full_access, send_as, send_on_behalf"),
    ({**D, "operation": "granted"}, "operation", "one of added, removed"),
    # sign-in
    (without(S, "user"), "user", "is required"),
    ({**S, "user": 5}, "user", "got a number"),
    (without(S, "ip"), "ip", "is required"),
    ({**S, "ip": "1.2.3"}, "ip", "not a valid IPv4 or IPv6"),
    ({**S, "country": "NLD"}, "country", "two letters"),
    ({**S, "country": "1A"}, "country", "two letters"),
    ({**S, "client_app": "telnet"}, "client_app", "one of browser, imap, pop, smtp, eas, other"),
    ({**S, "result": "ok"}, "result", "one of success, failure"),
    ({**S, "user_agent": "u" * 1001}, "user_agent", "at most 1000"),
]


@pytest.mark.parametrize(
    ("event", "field", "fragment"), BAD_FORMS, ids=lambda v: v if isinstance(v, str) else ""
)
def test_a_bad_field_is_rejected_with_a_message_naming_it(accepted, event, field, fragment):
    report = validate_events(accepted, [full_events()[0], event], base_index=10)
    assert [(e["index"], e["field"]) for e in report.errors] == [(11, field)]
    assert fragment in report.errors[0]["error"]
    assert [e.index for e in report.events] == [10]


@pytest.mark.parametrize("event", [[], "message", 42, None], ids=["array", "string", "number", "null"])
def test_an_event_that_is_not_an_object_is_an_error_for_the_whole_event(accepted, event):
    report = validate_events(accepted, [event])
    assert report.errors == [{"index": 0, "field": None, "error": report.errors[0]["error"]}]
    assert "must be a JSON object" in report.errors[0]["error"]


@pytest.mark.parametrize(
    ("event", "field", "fragment"), BAD_FORMS[:12], ids=lambda v: v if isinstance(v, str) else ""
)
def test_a_batch_with_one_bad_field_stores_nothing(accepted, event, field, fragment):
    result = ingest_events(accepted, [message("good-1"), event])
    assert result.accepted == 0
    assert result.errors and result.errors[0]["field"] == field
    assert not MessageEvent.objects.exists()
    assert not IngestedEvent.objects.exists()


def test_every_bad_field_of_one_event_is_reported(accepted):
    event = {**A, "recipients": [], "verdict": "evil", "size": -5}
    fields = [e["field"] for e in validate_events(accepted, [event]).errors]
    assert fields == ["recipients", "verdict", "size"]


def test_unknown_fields_are_ignored_and_reported_as_warnings(accepted):
    event = message("m-w", ALICE, spam_score=9.5, headers={"x": 1})
    rule = inbox_rule("r-w", ALICE, "rule-w", "created", actions={"delete": True, "play_sound": "ding"})
    report = validate_events(accepted, [event, rule])
    assert report.errors == []
    assert report.warnings == [
        {"index": 0, "field": "spam_score", "warning": "unknown field, ignored"},
        {"index": 0, "field": "headers", "warning": "unknown field, ignored"},
        {"index": 1, "field": "actions.play_sound", "warning": report.warnings[2]["warning"]},
    ]
    assert "spam_score" not in report.events[0].data
    assert report.events[1].data["actions"] == {"delete": True}


def test_unknown_fields_do_not_change_the_content_hash(accepted):
    plain, extra = validate_events(accepted, [message("m-h"), message("m-h", trace="abc")]).events
    assert plain.content_hash == extra.content_hash


def test_optional_fields_given_as_null_count_as_absent(accepted):
    report = validate_events(accepted, [message("m-n", subject=None, verdict=None, size=None)])
    assert report.errors == []
    assert report.events[0].data.keys() == {"id", "type", "time", "sender", "recipients"}


def test_a_forwarding_with_a_null_target_turns_forwarding_off(accepted):
    report = validate_events(accepted, [forwarding("f-off", ALICE, None)])
    assert report.errors == []
    assert report.events[0].data["forward_to"] is None


def test_an_address_outside_the_accepted_domains_is_an_error_at_its_index(accepted):
    report = validate_events(accepted, [message("m-ok"), message("m-out", "eve@elsewhere.example.org")])
    assert [(e["index"], e["field"]) for e in report.errors] == [(1, "sender")]
    assert "elsewhere.example.org is not an accepted domain" in report.errors[0]["error"]
    assert not Mailbox.objects.filter(address="eve@elsewhere.example.org").exists()


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (inbox_rule("r-o", "eve@elsewhere.example.org", "rule-o", "created"), "mailbox"),
        (forwarding("f-o", "eve@elsewhere.example.org", None), "mailbox"),
        (delegation("d-o", "eve@elsewhere.example.org", "x@example.com", "send_as", "added"), "mailbox"),
        (sign_in("s-o", "eve@elsewhere.example.org"), "user"),
    ],
)
def test_every_owner_field_must_be_in_an_accepted_domain(accepted, event, field):
    assert [e["field"] for e in validate_events(accepted, [event]).errors] == [field]


def test_a_mailbox_event_in_the_same_batch_declares_its_domain(tenant):
    batch = [
        message("m-1", "Ann@Newco.example", ["x@newco.example"]),
        mailbox_event("mb-1", "zed@newco.example"),
    ]
    report = validate_events(tenant, batch)
    assert report.errors == []
    assert report.declared_domains == {"newco.example"}


def test_a_known_mailbox_outside_the_accepted_domains_is_accepted(tenant):
    Mailbox.objects.create(tenant=tenant, address="legacy@old.example")
    assert validate_events(tenant, [message("m-l", "legacy@old.example")]).errors == []


def test_recipients_and_addresses_are_case_insensitive(accepted):
    report = validate_events(
        accepted, [message("m-c", "ALICE@Example.COM", ["Bob@example.com", "bob@EXAMPLE.com"])]
    )
    assert report.events[0].owner == ALICE
    assert report.events[0].data["recipients"] == ["bob@example.com"]
