"""The alert queue at triage speed: bulk assign / status / resolve through the alert services (one audit row
per alert), sortable column headers, filters that never repeat a key, ISO UTC time-range inputs, the next
alert after a decision, and no success message when nothing changed."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from django.urls import reverse

from alerts.models import Alert, AlertPolicy
from core.models import AuditEvent
from tests.alerts.alert_builders import make_alert, make_mailbox

pytestmark = pytest.mark.django_db

LIST = reverse("console:alert_list")
BULK = reverse("console:alert_bulk")


@pytest.fixture
def three_alerts(tenant):
    kinds = (AlertPolicy.Kind.FORWARDING, AlertPolicy.Kind.DELEGATION, AlertPolicy.Kind.FORWARDING_RULE)
    return [
        make_alert(tenant, make_mailbox(tenant, f"user{n}@example.com"), kind) for n, kind in enumerate(kinds)
    ]


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_bulk_resolve_resolves_each_alert_with_its_own_audit_row(operator_client, three_alerts):
    ids = [a.pk for a in three_alerts]
    response = operator_client.post(
        BULK,
        {
            "ids": ids,
            "operation": "resolve",
            "classification": "tp_compromised",
            "next": LIST + "?status=open",
        },
        follow=True,
    )
    assert response.redirect_chain[-1][0] == LIST + "?status=open"
    assert "3 alerts resolved." in _messages(response)[0]
    assert set(Alert.objects.filter(pk__in=ids).values_list("status", flat=True)) == {Alert.Status.RESOLVED}
    assert AuditEvent.objects.filter(action="alerts.alert.resolved").count() == 3


def test_bulk_resolve_needs_a_classification(operator_client, three_alerts):
    response = operator_client.post(BULK, {"ids": [three_alerts[0].pk], "operation": "resolve"}, follow=True)
    assert "Choose a classification" in _messages(response)[0]
    assert Alert.objects.open().count() == 3


def test_bulk_assign_counts_what_was_already_so(operator_client, operator, three_alerts):
    first = three_alerts[0]
    operator_client.post(BULK, {"ids": [first.pk], "operation": "assign_me"})
    response = operator_client.post(
        BULK, {"ids": [a.pk for a in three_alerts], "operation": "assign_me"}, follow=True
    )
    message = _messages(response)[-1]
    assert "2 alerts assigned to you." in message and "1 already was so" in message
    assert set(Alert.objects.values_list("assigned_to", flat=True)) == {operator.pk}
    assert set(Alert.objects.values_list("status", flat=True)) == {Alert.Status.IN_PROGRESS}
    assert AuditEvent.objects.filter(action="alerts.alert.assigned").count() == 3


def test_bulk_triage_is_refused_to_readers(reader_client, three_alerts):
    response = reader_client.post(BULK, {"ids": [three_alerts[0].pk], "operation": "assign_me"})
    assert response.status_code == 403
    assert Alert.objects.filter(assigned_to__isnull=False).count() == 0


def test_the_queue_offers_selection_to_operators_and_explains_to_readers(
    operator_client, reader_client, three_alerts
):
    page = operator_client.get(LIST).content.decode()
    assert page.count('form="alert-bulk"') == 3 and "data-select-all" in page
    read = reader_client.get(LIST).content.decode()
    assert 'form="alert-bulk"' not in read and "needs a Security operator" in read


def test_column_headers_sort_and_keep_each_filter_once(operator_client, three_alerts):
    page = operator_client.get(LIST + "?status=open&status=open&ordering=severity&page=1").content.decode()
    assert 'aria-sort="ascending"' in page
    hrefs = [h for h in _hrefs(page) if "ordering=" in h]
    assert hrefs
    for href in hrefs:
        keys = [k for k, _ in parse_qsl(urlsplit(href).query, keep_blank_values=True)]
        assert len(keys) == len(set(keys)), href
        assert "page" not in keys
    assert "?status=open&amp;ordering=-severity" in page  # a second click on Severity reverses it


def test_export_carries_each_filter_once_even_from_a_url_that_repeats_them(operator_client, three_alerts):
    page = operator_client.get(LIST + "?status=open&severity=&status=new&severity=").content.decode()
    export = next(h for h in _hrefs(page) if "format=csv" in h)
    keys = [k for k, _ in parse_qsl(urlsplit(export).query, keep_blank_values=True)]
    assert sorted(keys) == ["format", "severity", "status"]
    assert dict(parse_qsl(urlsplit(export).query, keep_blank_values=True))["status"] == "new"


def test_the_filter_form_replaces_the_query_string(operator_client, three_alerts):
    page = operator_client.get(LIST + "?status=open").content.decode()
    assert f'hx-get="{LIST}"' in page and 'hx-get=""' not in page


def test_time_range_is_one_iso_utc_control(operator_client, three_alerts):
    page = operator_client.get(LIST + "?since=2026-03-02 10:00").content.decode()
    assert 'type="datetime-local"' not in page
    assert "Time range (UTC" in page and 'placeholder="YYYY-MM-DD HH:MM"' in page
    assert 'value="2026-03-02 10:00"' in page


def test_list_cells_do_not_repeat_utc(operator_client, three_alerts):
    page = operator_client.get(LIST).content.decode()
    assert "Last activity (UTC)" in page
    assert " UTC</time>" not in page


def test_resolving_opens_the_next_alert_in_the_queue(operator_client, three_alerts):
    first, following = three_alerts[2], three_alerts[1]  # latest activity first
    response = operator_client.post(
        reverse("console:alert_resolve", args=[first.pk]),
        {"classification": "false_positive", "next_alert": "1"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse("console:alert_detail", args=[following.pk])
    assert f"Alert #{first.pk} resolved" in _messages(response)[0]


def test_setting_the_status_it_already_has_says_nothing_changed(operator_client, three_alerts):
    alert = three_alerts[0]
    url = reverse("console:alert_status", args=[alert.pk])
    response = operator_client.post(url, {"status": "new"}, follow=True)
    assert _messages(response) == ["Nothing changed: the alert is already new and unassigned."]
    assert not AuditEvent.objects.filter(action="alerts.alert.status_changed").exists()


def test_assign_to_me_says_it_also_starts_work(operator_client, three_alerts):
    alert = three_alerts[0]
    page = operator_client.get(reverse("console:alert_detail", args=[alert.pk])).content.decode()
    assert "also sets the status to In progress" in page


def _hrefs(page: str) -> list[str]:
    import re
    from html import unescape

    return [unescape(h) for h in re.findall(r'href="([^"]*)"', page)]
