"""The compiled validator (msgspec, ``mailflow/compiled.py``) against the Python validator it speeds up:
for any event, both give the same outcome — the same normal form and content hash when valid, the same
errors and warnings (messages, fields, indexes) when not. Checked on realistic events, on every spelling the
contract normalises, and on hypothesis-drawn values in every field of the two compiled types.
"""

from __future__ import annotations

import json
import os
from itertools import count

import pytest
import time_machine
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailflow import compiled, validation
from mailflow.validation import ValidEvent, validate_events

from .events import message, sign_in

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("INGEST_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def both_ways(tenant, events, monkeypatch) -> tuple[validation.ValidationReport, validation.ValidationReport]:
    # The clock stands still: an out-of-range time's message names "now" to the second.
    with time_machine.travel(timezone.now(), tick=False):
        fast = validate_events(tenant, events)
        with monkeypatch.context() as patched:
            patched.setattr(validation, "_validate_fast", lambda raw, index: raw)
            slow = validate_events(tenant, events)
    return fast, slow


def outcome(report: validation.ValidationReport) -> tuple:
    return (
        [(e.index, e.id, e.type, e.time, e.data, e.owner, e.content_hash) for e in report.events],
        report.errors,
        report.warnings,
    )


def realistic(n: int) -> dict:
    if n % 10 == 9:
        return sign_in(
            f"si-{n}", f"user{n % 13}@example.com", f"198.51.{n % 256}.{n % 250 + 1}", country="NL"
        )
    return message(
        f"msg-{n}",
        f"user{n % 13}@example.com",
        [f"user{(n + 1) % 13}@example.com", f"contact{n}@partner{n % 4}.example.net"][: 1 + n % 2],
        minutes=n,
        subject=f"Invoice {n}",
        verdict="clean",
        size=2000 + n,
        client_ip=f"10.{n % 256}.0.{n % 250 + 1}",
        internet_message_id=f"<{n}@example.com>",
        body_hash=f"{n:032x}",
        **({"urls": [f"https://partner.example.net/p/{n}"]} if n % 5 == 0 else {}),
    )


def test_the_compiled_path_takes_the_realistic_stream(accepted, monkeypatch):
    events = [realistic(n) for n in range(300)]
    taken = [validation._validate_fast(e, i) for i, e in enumerate(events)]
    assert all(isinstance(t, ValidEvent) for t in taken)
    fast, slow = both_ways(accepted, events, monkeypatch)
    assert outcome(fast) == outcome(slow)
    assert len(fast.events) == len(events)


SPELLINGS = [
    message("s1", "ALICE+tag@Example.com", ["Bob@example.com", "bob@EXAMPLE.com", "x@Else.example"]),
    message("s2", time="2025-03-03T11:00:00+02:00", subject=None, verdict=None, urls=None),
    message("s3", client_ip="2001:0db8:0000:0000:0000:0000:0000:0001", size=0, urls=[]),
    message("s4", client_ip="010.1.2.3"),
    message("s5", client_ip="10.1.2.3", urls=["https://a.example/x"], body_hash="ab", subject="é ✓"),
    message("s6", subject="a\x00b"),
    message("s7", urls=[" "]),
    message("s8", id=" "),
    message("s9", size=True),
    message("s10", size=1.0),
    message("s11", recipients=["not an address"]),
    message("s12", sender="alice@outside.example"),
    message("s13", verdict="evil"),
    message("s14", extra="field"),
    message("s15", time="2025-03-03T09:00:00"),
    message("s16", time="9999-12-31T23:59:59Z"),
    message("s17", recipients=[]),
    sign_in("s18", "Alice@example.com", country="ng", client_app="imap", result="failure", user_agent="x"),
    sign_in("s19", "alice@example.com", ip="::ffff:10.0.0.1"),
    sign_in("s20", "alice@example.com", country="N1"),
    sign_in("s21", "alice@example.com", ip="10.0.0.256"),
    {
        "type": "message",
        "id": "s22",
        "time": "2025-03-03T09:00:00Z",
        "sender": None,
        "recipients": ["b@x.io"],
    },
    {"type": "sign_in", "id": "s23", "time": "2025-03-03T09:00:00Z", "user": "alice@example.com"},
]


def test_every_normalised_spelling_and_every_refusal_is_the_python_validators(accepted, monkeypatch):
    fast, slow = both_ways(accepted, SPELLINGS, monkeypatch)
    assert outcome(fast) == outcome(slow)
    assert {e.id for e in fast.events} == {"s1", "s2", "s3", "s5", "s14", "s18", "s19"}
    assert fast.warnings == [{"index": 13, "field": "extra", "warning": "unknown field, ignored"}]


def test_a_line_decoded_by_the_compiled_decoder_validates_like_its_json(accepted, monkeypatch):
    lines = [json.dumps(e).encode() for e in SPELLINGS]
    decoded = [compiled.decode_line(line) or json.loads(line) for line in lines]
    assert sum(isinstance(d, compiled.MessageIn | compiled.SignInIn) for d in decoded) >= 10
    fast = validate_events(accepted, decoded)
    _, slow = both_ways(accepted, [json.loads(line) for line in lines], monkeypatch)
    assert outcome(fast) == outcome(slow)


TEXT = st.text(max_size=20) | st.sampled_from(
    ["", " ", "\x00", "\ud800", "Bob@Example.com", "b+x@example.com", "1.2.3.4", "01.2.3.4", "::1", "NL"]
)
VALUES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | TEXT
    | st.lists(TEXT, max_size=3)
    | st.dictionaries(TEXT, TEXT, max_size=2)
)
FIELDS = {
    "message": ["id", "time", "sender", "recipients", "subject", "verdict", "urls", "size", "client_ip"],
    "sign_in": ["id", "time", "user", "ip", "country", "client_app", "result", "user_agent"],
}
_ids = count(1)


def test_any_value_in_any_field_gives_the_same_outcome_both_ways(accepted, monkeypatch):
    cases = 0

    @FUZZ
    @given(st.sampled_from(sorted(FIELDS)), st.data())
    def check(event_type, data) -> None:
        nonlocal cases
        cases += 1
        name = data.draw(st.sampled_from(FIELDS[event_type]))
        value = data.draw(VALUES)
        event_id = f"fz-{next(_ids)}"
        event = message(event_id) if event_type == "message" else sign_in(event_id, "a@example.com")
        event[name] = value
        fast, slow = both_ways(accepted, [event], monkeypatch)
        assert outcome(fast) == outcome(slow), event

    check()
    assert cases >= min(EXAMPLES, 100)
