"""Every list, API and console, answers a hostile filter value with a 400 (API) or the filter ignored and a
form error (console), never a 500 (issue 15, row 7): offsets PostgreSQL refuses (``-16:30``), times that
overflow once converted to UTC (``0001-…+01:00``), integers past 64 bits, NUL characters, huge strings."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

API_LISTS = [
    "/api/v1/incidents/",
    "/api/v1/alerts/",
    "/api/v1/policies/",
    "/api/v1/investigations/",
    "/api/v1/actions/",
    "/api/v1/mailboxes/",
    "/api/v1/messages/",
    "/api/v1/restrictions/",
    "/api/v1/webhooks/",
    "/api/v1/m365/connections/",
    "/api/v1/feed/",
]
CONSOLE_LISTS = [
    "/",
    "/incidents/",
    "/alerts/",
    "/restricted-users/",
    "/investigations/",
    "/action-center/",
    "/mailboxes/",
    "/policies/",
    "/audit/",
    "/settings/notifications/",
    "/settings/m365/",
    "/settings/mail-servers/",
]
PARAMETERS = [
    "since",
    "until",
    "tenant",
    "policy",
    "mailbox",
    "user",
    "q",
    "investigation",
    "endpoint",
    "sender",
    "status",
    "severity",
    "ordering",
    "page",
    "cursor",
    "last",
    "connection",
    "alert",
    "sent_page",
]
BAD_VALUES = {
    "offset_beyond_postgresql": "2026-01-01T00:00:00-16:30",
    "year_1_east_of_utc": "0001-01-01T00:00:00+01:00",
    "year_9999_west_of_utc": "9999-12-31T23:59:59-01:00",
    "huge_integer": "99999999999999999999999",
    "negative_huge_integer": "-99999999999999999999999",
    "nul": "a\x00b",
    "huge_string": "x" * 20_000,
}

# Read outside the filtersets (view code), so each is also sent alone.
ALONE = ["since", "tenant", "page", "cursor", "policy", "mailbox", "sent_page"]


PAGING = {"page", "sent_page"}  # a console page number that is not one is a 404, as Django's lists answer


def hostile_requests(client, url: str, value: str):
    """One request with every filter parameter set to ``value``, then one per parameter of :data:`ALONE`."""
    yield "all", client.get(url, {name: value for name in PARAMETERS if name not in PAGING})
    for name in ALONE:
        yield name, client.get(url, {name: value})


@pytest.mark.parametrize("value", BAD_VALUES.values(), ids=BAD_VALUES.keys())
@pytest.mark.parametrize("url", API_LISTS)
def test_every_api_list_answers_a_hostile_filter_with_a_client_error(administrator_client, url, value):
    for name, response in hostile_requests(administrator_client, url, value):
        assert response.status_code < 500, (name, response.status_code)


@pytest.mark.parametrize("value", BAD_VALUES.values(), ids=BAD_VALUES.keys())
@pytest.mark.parametrize("url", CONSOLE_LISTS)
def test_every_console_list_ignores_a_hostile_filter(administrator_client, url, value):
    for name, response in hostile_requests(administrator_client, url, value):
        expected = {200, 404} if name in PAGING else {200}
        assert response.status_code in expected, (name, response.status_code)


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_an_api_list_names_the_out_of_range_filter_in_its_400(administrator_client, since):
    response = administrator_client.get("/api/v1/alerts/", {"since": since})
    assert response.status_code == 400
    assert "since" in response.json()


def test_an_api_list_refuses_a_64_bit_overflowing_id_with_a_400(administrator_client):
    response = administrator_client.get("/api/v1/restrictions/", {"mailbox": BAD_VALUES["huge_integer"]})
    assert response.status_code == 400
    assert "mailbox" in response.json()


def test_a_console_list_shows_the_bad_filter_as_a_form_error_and_lists_unfiltered(administrator_client):
    response = administrator_client.get("/alerts/", {"since": "0001-01-01T00:00:00+01:00"})
    assert response.status_code == 200
    assert "This time is out of range." in response.content.decode()


def test_a_time_filter_with_an_offset_postgresql_refuses_filters_in_utc(administrator_client):
    from core.filters import UtcDateTimeField

    moment = UtcDateTimeField().clean("2026-01-01T00:00:00-16:30")
    assert moment.isoformat() == "2026-01-01T16:30:00+00:00"
    assert (
        administrator_client.get("/api/v1/messages/", {"since": "2026-01-01T00:00:00-16:30"}).status_code
        == 200
    )
