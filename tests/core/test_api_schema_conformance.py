"""The OpenAPI schema matches the responses (issue 15, row 14): schemathesis generates requests from
``/api/v1/schema/`` for every GET endpoint (a reader's session, on a simulated tenant with alerts,
investigations and actions) and for ``POST /api/v1/events/`` (an ingest token), in-process against the WSGI
app on the PostgreSQL test database. Checks: no 5xx, status code, content type and response body as declared.

Bounded: ``SCHEMATHESIS_MAX_EXAMPLES`` cases per GET operation (default 25), ``SCHEMATHESIS_INGEST_EXAMPLES``
for the ingest (default 150); about a minute on two cores. The number of cases generated is
printed (run with ``-s``) and asserted to be non-zero, so a run that silently tested nothing fails.
"""

from __future__ import annotations

import io
import json
import os
from contextlib import contextmanager

import pytest
import schemathesis
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))
INGEST_EXAMPLES = int(os.environ.get("SCHEMATHESIS_INGEST_EXAMPLES", "150"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def api_schema():
    raw = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    schema = schemathesis.openapi.from_dict(raw)
    schema.app = get_wsgi_application()
    return schema


def operations(schema, method: str) -> list:
    found = [result.ok() for result in schema.get_all_operations()]
    return [op for op in found if op.method.upper() == method]


def run(operation, failures: dict, examples: int = MAX_EXAMPLES, **call) -> int:
    """Generate and check up to MAX_EXAMPLES cases of one operation; returns how many ran. What failed goes
    to ``failures`` (by operation), so one run reports every operation at fault."""
    count = 0

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case) -> None:
        nonlocal count
        count += 1
        case.call_and_validate(checks=CHECKS, **call)

    try:
        with connection_kept():
            check()
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - reported with every other operation's
        failures[operation.label] = str(exc)[:3000]
    return count


@contextmanager
def connection_kept():
    """As Django's test client does: a request must not close the connection holding the test transaction
    (the test client connects the handlers back after each of its requests, so this wraps each run)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def simulated_tenant(tenant, administrator, django_capture_on_commit_callbacks):
    """A small simulated tenant: alerts, investigations, pending and decided actions, restrictions."""
    with django_capture_on_commit_callbacks(execute=True):  # each batch's detection runs on commit
        call_command(
            "simulate_tenant", "--mailboxes", "40", "--days", "2", "--compromised", "2", "--seed", "3",
            stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
    from alerts.models import Alert
    from investigations.models import Investigation, RemediationAction

    assert Alert.objects.exists() and Investigation.objects.exists() and RemediationAction.objects.exists()
    return tenant


def test_every_get_endpoint_answers_as_its_schema_declares_for_a_reader(simulated_tenant, reader, client):
    client.force_login(reader)
    session = {"sessionid": client.cookies["sessionid"].value}
    schema = api_schema()
    failures: dict[str, str] = {}
    # The schema document itself is checked by tests/security (it needs a signed-in user; its media type is
    # OpenAPI's own, not one of the API's answers).
    counts = {
        op.label: run(op, failures, cookies=session)
        for op in operations(schema, "GET")
        if op.path != "/api/v1/schema/"
    }
    print(f"\nschemathesis GET as a reader: {sum(counts.values())} cases over {len(counts)} operations")
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    assert len(counts) >= 10 and all(counts.values()), counts


def test_event_ingest_answers_as_its_schema_declares_for_an_ingest_token(tenant, administrator):
    from core.services import create_api_token

    _, raw = create_api_token(tenant, actor=administrator, name="schemathesis", scope="ingest")
    [operation] = [op for op in operations(api_schema(), "POST") if op.path == "/api/v1/events/"]
    failures: dict[str, str] = {}
    count = run(operation, failures, INGEST_EXAMPLES, headers={"Authorization": f"Bearer {raw}"})
    print(f"\nschemathesis POST /api/v1/events/ with an ingest token: {count} cases")
    assert not failures, failures
    assert count > 0


def test_every_object_endpoint_answers_as_declared_for_a_real_object(simulated_tenant, reader, client):
    """Generated ids mostly miss (404): each ``{id}`` endpoint is also called with the first id its list
    shows, so the full representation of a real object is checked against the schema."""
    client.force_login(reader)
    session = {"sessionid": client.cookies["sessionid"].value}
    checked = []
    for operation in operations(api_schema(), "GET"):
        if not operation.path.endswith("/{id}/") and not operation.path.endswith("/{id}/overrides/"):
            continue
        listing = client.get(operation.path.split("{id}")[0]).json()
        rows = listing.get("results", []) if isinstance(listing, dict) else listing
        if not rows:
            continue
        case = operation.Case(path_parameters={"id": rows[0]["id"]})
        with connection_kept():
            case.call_and_validate(checks=CHECKS, cookies=session)
        checked.append(operation.path)
    print(f"\nschemathesis: {len(checked)} object endpoints checked with a real id")
    assert {"/api/v1/alerts/{id}/", "/api/v1/investigations/{id}/", "/api/v1/actions/{id}/"} <= set(checked)
    assert "/api/v1/policies/{id}/overrides/" in checked


def test_an_empty_cef_page_keeps_its_declared_text_type(reader_client):
    response = reader_client.get("/api/v1/feed/", {"format": "cef"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content == b""
    assert response["X-Next-Cursor"] == "0"


def test_the_schema_declares_the_overrides_list_unpaginated_and_the_cef_text():
    raw = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    overrides = raw["paths"]["/api/v1/policies/{id}/overrides/"]["get"]["responses"]["200"]
    assert overrides["content"]["application/json"]["schema"]["type"] == "array"
    feed = raw["paths"]["/api/v1/feed/"]["get"]["responses"]["200"]["content"]
    assert feed["text/plain"]["schema"]["type"] == "string"
    action = raw["components"]["schemas"]["RemediationAction"]["properties"]
    assert action["decided_by"]["nullable"] and action["undone_by"]["nullable"]
