"""No bad input reaches a 500 (issue 15, rows 1, 2, 3, 11 and 13 for ingest): out-of-range times, NUL and lone
surrogates in any text, deep nesting, huge integers, undecodable bodies; each is a 400 naming the event and
the field (or the line), nothing stored; in lenient mode only the bad event is rejected."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from mailboxes.models import InboxRule, Mailbox
from mailflow.ingest import LENIENT, ingest_events
from mailflow.models import IngestedEvent, MessageEvent

from .events import inbox_rule, mailbox_event, message, sign_in

pytestmark = pytest.mark.django_db

URL = "/api/v1/events/"


def post(client, body: str | bytes, content_type: str = "application/json"):
    return client.post(URL, data=body, content_type=content_type)


def nothing_stored() -> bool:
    return not IngestedEvent.objects.exists() and not MessageEvent.objects.exists()


# ---------------------------------------------------------------------------------------------- row 1: times


@pytest.mark.parametrize(
    "time", ["9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+00:00", "0001-01-01T00:30:00+01:00"]
)
def test_an_event_time_at_the_ends_of_the_calendar_is_a_400_and_nothing_is_stored(
    accepted, ingest_token, token_client, time
):
    events = [message("m-1"), {**message("m-2"), "time": time}]
    response = post(token_client(ingest_token), json.dumps(events))
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["index"], error["field"]) == (1, "time")
    assert "out of range" in error["error"]
    assert nothing_stored()


def test_event_times_are_accepted_from_the_earliest_setting_to_a_day_ahead(accepted, settings):
    settings.INGEST_EARLIEST_TIME = "2020-01-01T00:00:00+00:00"
    now = timezone.now()
    ok = ingest_events(accepted, [{**message("ahead"), "time": (now + timedelta(hours=23)).isoformat()}])
    assert ok.accepted == 1
    late = ingest_events(accepted, [{**message("too-far"), "time": (now + timedelta(days=2)).isoformat()}])
    early = ingest_events(accepted, [{**message("too-early"), "time": "2019-12-31T23:59:59+00:00"}])
    assert [e["field"] for e in late.errors + early.errors] == ["time", "time"]
    settings.INGEST_MAX_FUTURE_SECONDS = 3 * 86_400
    assert ingest_events(accepted, [{**message("too-far"), "time": (now + timedelta(days=2)).isoformat()}]).ok


# ------------------------------------------------------------------------------- row 2: NUL in any text field

NUL_EVENTS = {
    "id": lambda: {**message("x"), "id": "m\x001"},
    "subject": lambda: message("m-1", subject="Invoice\x00"),
    "display_name": lambda: mailbox_event("mb-1", "ann@example.com", display_name="Ann\x00"),
    "user_agent": lambda: sign_in("s-1", "ann@example.com", user_agent="curl\x00"),
    "urls[0]": lambda: message("m-1", urls=["https://x.example/\x00"]),
    "conditions.subject_contains[0]": lambda: inbox_rule(
        "r-1", "ann@example.com", "rule-1", "created", conditions={"subject_contains": ["a\x00"]}
    ),
    "conditions.platform.nested[1]": lambda: inbox_rule(
        "r-1", "ann@example.com", "rule-1", "created", conditions={"platform": {"nested": ["ok", "b\x00"]}}
    ),
    "conditions.k\\u0000": lambda: inbox_rule(
        "r-1", "ann@example.com", "rule-1", "created", conditions={"k\x00": "v"}
    ),
    "actions.move_to_folder": lambda: inbox_rule(
        "r-1", "ann@example.com", "rule-1", "created", actions={"move_to_folder": "RSS\x00"}
    ),
}


@pytest.mark.parametrize("field", NUL_EVENTS)
def test_a_nul_in_any_text_field_is_a_400_naming_the_field(accepted, ingest_token, token_client, field):
    events = [message("good"), NUL_EVENTS[field]()]
    response = post(token_client(ingest_token), json.dumps(events))
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["index"], error["field"]) == (1, field)
    assert "NUL" in error["error"]
    assert nothing_stored() and not InboxRule.objects.exists()


def test_in_lenient_mode_only_the_bad_events_are_rejected_and_the_good_ones_stored(accepted):
    events = [
        message("good-1"),
        message("bad-nul", subject="\x00"),
        {**message("bad-time"), "time": "9999-12-31T23:59:59+00:00"},
        message("bad-surrogate", subject="\ud800"),
        message("good-2"),
    ]
    result = ingest_events(accepted, events, mode=LENIENT, source="connector")
    assert (result.accepted, result.rejected) == (2, 3)
    assert [(e["index"], e["field"]) for e in result.errors] == [(1, "subject"), (2, "time"), (3, "subject")]
    assert set(MessageEvent.objects.values_list("event_id", flat=True)) == {"good-1", "good-2"}


# ------------------------------------------------------------- row 3: surrogates, deep nesting, huge integers


def test_a_lone_surrogate_is_a_400_naming_the_field_and_the_answer_is_valid_utf8(
    accepted, ingest_token, token_client
):
    body = '[{"id": "m-1", "type": "message", "time": "2025-03-03T09:00:00Z", "sender": "ann@example.com", '
    body += '"recipients": ["bob@example.com"], "subject": "\\ud800", "\\udfff": 1}]'
    response = post(token_client(ingest_token), body)
    assert response.status_code == 400
    answer = response.json()
    assert [(e["index"], e["field"]) for e in answer["errors"]] == [(0, "subject")]
    assert "surrogate" in answer["errors"][0]["error"]
    assert answer["warnings"][0]["field"] == "\\udfff"  # an unknown field, named with an escape
    assert nothing_stored()


BAD_BODIES = {
    "deep_nesting": '[{"id": "ok"}, ' + "[" * 100_000 + "]" * 100_000 + "]",
    "huge_integer": '[{"id": "ok"}, {"size": ' + "9" * 5_000 + "}]",
    "nan": '[{"id": "ok"}, {"size": NaN}]',
    "syntax": '[{"id": "ok"}, {"size": ]',
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_a_json_body_that_does_not_decode_is_a_400_naming_the_event(
    accepted, ingest_token, token_client, body
):
    response = post(token_client(ingest_token), body)
    assert response.status_code == 400
    assert response.json()["index"] == 1
    assert "Event 1" in response.json()["detail"]
    assert nothing_stored()


@pytest.mark.parametrize("line", [*BAD_BODIES.values(), b'{"id": "\xff"}'], ids=[*BAD_BODIES, "not_utf8"])
def test_an_ndjson_line_that_does_not_decode_is_a_400_naming_the_line(
    accepted, ingest_token, token_client, line
):
    good = json.dumps(message("m-1")).encode()
    body = good + b"\n\n" + (line if isinstance(line, bytes) else line.encode()) + b"\n"
    response = post(token_client(ingest_token), body, "application/x-ndjson")
    assert response.status_code == 400
    assert response.json()["line"] == 3
    assert nothing_stored()


def test_a_json_body_that_is_not_utf8_is_a_400_naming_the_line(accepted, ingest_token, token_client):
    response = post(token_client(ingest_token), b'[\n{"id": "\xff"}]')
    assert response.status_code == 400
    assert response.json()["line"] == 2


def test_open_conditions_are_bounded_in_depth_and_integer_size(accepted):
    deep: dict = {"x": 1}
    for _ in range(12):
        deep = {"x": deep}
    events = [
        inbox_rule("r-1", "ann@example.com", "rule-1", "created", conditions={"platform": deep}),
        inbox_rule("r-2", "ann@example.com", "rule-2", "created", conditions={"size_over": 2**64}),
        inbox_rule("r-3", "ann@example.com", "rule-3", "created", conditions={"score": float("inf")}),
        inbox_rule("r-4", "ann@example.com", "rule-4", "created", conditions={"size_over": 2**62}),
    ]
    result = ingest_events(accepted, events)
    assert [(e["index"], e["field"].split(".")[0]) for e in result.errors] == [
        (0, "conditions"),
        (1, "conditions"),
        (2, "conditions"),
    ]
    assert "levels deep" in result.errors[0]["error"]
    assert "integers must be within" in result.errors[1]["error"]
    assert "finite" in result.errors[2]["error"]
    assert ingest_events(accepted, events[3:]).accepted == 1


def test_import_events_reports_undecodable_lines_by_number_and_stores_nothing(accepted, tmp_path: Path):
    path = tmp_path / "events.ndjson"
    lines = [
        json.dumps(message("m-1")).encode(),
        b"[" * 100_000 + b"]" * 100_000,
        b'{"size": ' + b"9" * 5_000 + b"}",
        b'{"id": "\xff"}',
        json.dumps(message("m-5", subject="\x00")).encode(),
        json.dumps({**message("m-6"), "time": "9999-12-31T23:59:59+00:00"}).encode(),
        json.dumps(message("m-7", subject="\ud800"), ensure_ascii=True).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    err = io.StringIO()
    with pytest.raises(CommandError, match="6 error"):
        call_command("import_events", str(path), stdout=io.StringIO(), stderr=err)
    report = err.getvalue()
    for number, text in [
        (2, "nested too deeply"),
        (3, "too many digits"),
        (4, "not UTF-8"),
        (5, "subject"),
        (6, "time"),
        (7, "surrogate"),
    ]:
        assert f"line {number}" in report and text in report, (number, report)
    assert nothing_stored()


# ------------------------------------------------------------------ row 11: same id, other content, one batch


def test_a_repeated_id_with_other_content_in_one_request_is_reported_as_a_conflict(
    accepted, ingest_token, token_client
):
    events = [message("m-1", subject="first"), message("m-1", subject="second")]
    response = post(token_client(ingest_token), json.dumps(events))
    assert response.status_code == 201
    assert (response.json()["accepted"], response.json()["conflicts"]) == (1, 1)
    assert response.json()["conflicting_ids"] == ["m-1"]
    assert MessageEvent.objects.get().subject == "first"


# ------------------------------------------------------------------------------- row 13: sub-address identity


def test_a_sub_addressed_owner_is_the_base_mailbox(accepted):
    events = [
        mailbox_event("mb-1", "Jamal+Sales@example.com", display_name="Jamal"),
        message("m-1", sender="jamal+news@example.com"),
        sign_in("s-1", "jamal+x@example.com"),
        inbox_rule("r-1", "jamal+y@example.com", "rule-1", "created"),
        message("m-2", recipients=["bob+tag@example.com"]),
    ]
    result = ingest_events(accepted, events)
    assert result.ok, result.errors
    assert list(Mailbox.objects.values_list("address", flat=True).order_by("address")) == [
        "alice@example.com",
        "jamal@example.com",
    ]
    assert MessageEvent.objects.get(event_id="m-1").sender.address == "jamal@example.com"
    assert MessageEvent.objects.get(event_id="m-2").recipients == ["bob+tag@example.com"]
