"""Fuzzing the ingest validator with hypothesis (issue 15): any JSON value in any field of any event type,
through the service and through ``POST /api/v1/events/``. Every outcome is a success or a refusal naming the
field at fault; nothing is stored on a refusal; nothing raises.

Bounded by ``INGEST_FUZZ_EXAMPLES`` (default 300 per test); the number of cases run is printed (``-s``).
"""

from __future__ import annotations

import json
import os
from itertools import count

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailflow.ingest import ingest_events
from mailflow.models import IngestedEvent
from mailflow.validation import SCHEMAS

from .events import delegation, forwarding, inbox_rule, mailbox_event, message, sign_in

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("INGEST_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
ALICE = "alice@example.com"
VALID = {
    "mailbox": lambda i: mailbox_event(i, ALICE, display_name="Alice"),
    "message": lambda i: message(i, subject="Hello"),
    "inbox_rule": lambda i: inbox_rule(
        i, ALICE, "rule-1", "created", actions={"forward_to": "x@else.example"}
    ),
    "forwarding": lambda i: forwarding(i, ALICE, "x@else.example"),
    "delegation": lambda i: delegation(i, ALICE, "bob@example.com", "full_access", "added"),
    "sign_in": lambda i: sign_in(i, ALICE, country="NG"),
}
# Every field of every event type, plus an unknown one.
FIELDS = sorted({"id", "time", "type", "unknown_field", *(f.name for s in SCHEMAS.values() for f in s)})

TEXT = st.text(alphabet=st.characters(codec=None, categories=None), max_size=30) | st.sampled_from(
    [
        "\x00",
        "\ud800",
        "a\udfffb",
        "",
        " ",
        "ALICE+x@example.com",
        "2025-03-03T09:00:00Z",
        "9999-12-31T23:59:59Z",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=True, allow_infinity=True)
    | TEXT
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)
EVENTS = st.tuples(st.sampled_from(sorted(VALID)), st.sampled_from(FIELDS), JSON_VALUES)

_ids = count(1)


def mutated(event_type: str, name: str, value) -> dict:
    event = VALID[event_type](f"fuzz-{next(_ids)}")
    event[name] = value
    return event


def assert_refusal_names_the_field(errors: list[dict], name: str) -> None:
    assert errors, "a refusal without an error"
    for error in errors:
        field = error["field"]
        assert isinstance(field, str) and field, error
        if name not in ("type", "unknown_field"):
            # The mutated field, or (a changed type makes other fields required) a field of the new type.
            assert field.split(".")[0].split("[")[0] in {name, *FIELDS}, error
        json.dumps(error, ensure_ascii=False).encode("utf-8")  # safe to answer


@pytest.fixture
def fuzz_tenant(accepted):
    return accepted


def test_any_json_value_in_any_field_is_stored_or_refused_naming_the_field(fuzz_tenant):
    cases = 0

    @FUZZ
    @given(EVENTS)
    def check(drawn) -> None:
        nonlocal cases
        cases += 1
        event_type, name, value = drawn
        before = IngestedEvent.objects.count()
        result = ingest_events(fuzz_tenant, [mutated(event_type, name, value)])
        if result.errors:
            assert_refusal_names_the_field(result.errors, name)
            assert IngestedEvent.objects.count() == before
        else:
            assert result.accepted + result.duplicates + len(result.conflicts) == 1

    check()
    print(f"\nhypothesis fuzz of the ingest validator: {cases} cases")
    assert cases >= min(EXAMPLES, 100)


def test_the_api_answers_any_json_value_in_any_field_with_a_2xx_or_a_4xx_naming_it(
    fuzz_tenant, ingest_token, token_client
):
    client = token_client(ingest_token)
    cases = 0

    @FUZZ
    @given(EVENTS)
    def check(drawn) -> None:
        nonlocal cases
        cases += 1
        event_type, name, value = drawn
        body = json.dumps([mutated(event_type, name, value)])  # NaN / Infinity sent as the literals
        before = IngestedEvent.objects.count()
        response = client.post("/api/v1/events/", data=body, content_type="application/json")
        assert response.status_code in (200, 201, 400), response.content[:300]
        answer = response.json()
        if response.status_code == 400:
            assert IngestedEvent.objects.count() == before
            if "errors" in answer:
                assert_refusal_names_the_field(answer["errors"], name)
            else:  # a value JSON cannot carry (NaN, Infinity): the event is named
                assert answer["index"] == 0 and "Event 0" in answer["detail"]

    check()
    print(f"\nhypothesis fuzz of POST /api/v1/events/: {cases} cases")
    assert cases >= min(EXAMPLES, 100)
