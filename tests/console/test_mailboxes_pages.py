"""The Mailboxes pages: the list (search, department, VIP and tenant filters, sorts, CSV, htmx rows, a
query count that does not grow with the rows), a mailbox's detail (rules, forwarding, delegations with their
history, sign-ins, sent mail, alerts and restriction), the accepted domains page, escaping, permissions.

Data comes in through the ingest service, as it would from the API."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from alerts.detection import Detection, Evidence
from alerts.models import AlertPolicy
from alerts.services import ensure_default_policies, raise_alert
from core.models import AuditEvent, Tenant
from mailboxes.models import AcceptedDomain, Mailbox
from mailflow.ingest import ingest_events
from restricted_users.services import restrict_by_hand
from tests.builders import frozen_at

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LIST = reverse("console:mailboxes")
DOMAINS = reverse("console:accepted_domains")
XSS = "<img src=x onerror=alert(1)>"
ESCAPED_XSS = "&lt;img src=x onerror=alert(1)&gt;"
_ids = itertools.count(1)


frozen_time = frozen_at(NOW)


def _at(delta: timedelta) -> str:
    return (NOW - delta).isoformat()


def ingest(tenant: Tenant, *events: dict) -> list[str]:
    """Store events through the ingest service (strict mode); every one must be accepted. Returns the ids."""
    stamped = [{"id": f"evt-{next(_ids)}", **event} for event in events]
    result = ingest_events(tenant, stamped, mode="strict", source="test")
    assert result.ok, result.errors
    assert result.accepted == len(stamped), result.summary()
    return [event["id"] for event in stamped]


def mailbox_event(address: str, ago: timedelta = timedelta(days=20), **attributes) -> dict:
    return {"type": "mailbox", "time": _at(ago), "address": address, **attributes}


def message(sender: str, ago: timedelta, *, recipients=("colleague@example.com",), **fields) -> dict:
    return {"type": "message", "time": _at(ago), "sender": sender, "recipients": list(recipients), **fields}


def sign_in(user: str, ago: timedelta, **fields) -> dict:
    return {"type": "sign_in", "time": _at(ago), "user": user, "ip": "203.0.113.7", **fields}


def rule(mailbox: str, rule_id: str, ago: timedelta, operation: str = "created", **fields) -> dict:
    return {
        "type": "inbox_rule",
        "time": _at(ago),
        "mailbox": mailbox,
        "rule_id": rule_id,
        "operation": operation,
        **fields,
    }


def mailbox(address: str) -> Mailbox:
    return Mailbox.objects.get(address=address)


def detail_url(address: str) -> str:
    return reverse("console:mailbox_detail", args=[mailbox(address).pk])


def rows_of(html: str) -> list[str]:
    """The addresses of the list's rows, in order."""
    import re

    return re.findall(r'<th scope="row"><a href="/mailboxes/\d+/">([^<]+)</a>', html)


def csv_rows(response) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.fixture
def directory(tenant):
    """Alice (VIP, Finance) forwards outside and has a forwarding rule; Bob (Sales) is quiet; Carol (Finance)
    sends a lot."""
    ingest(
        tenant,
        mailbox_event("alice@example.com", display_name="Alice Ng", department="Finance", vip=True),
        mailbox_event("bob@example.com", display_name="Bob Stone", department="Sales"),
        mailbox_event("carol@example.com", display_name="Carol Diaz", department="Finance"),
        {"type": "forwarding", "time": _at(timedelta(hours=5)), "mailbox": "alice@example.com",
         "forward_to": "drop@evil.example", "keep_copy": True},
        rule("alice@example.com", "r-1", timedelta(hours=6), name="Invoices",
             conditions={"subject_contains": ["invoice", "payment"]},
             actions={"forward_to": ["collector@evil.example", "bob@example.com"], "mark_as_read": True}),
        {"type": "delegation", "time": _at(timedelta(hours=4)), "mailbox": "alice@example.com",
         "delegate": "helper@outside.example", "access": "full_access", "operation": "added"},
        sign_in("alice@example.com", timedelta(hours=2), country="FR", client_app="imap", result="success",
                user_agent="curl/8"),
        sign_in("alice@example.com", timedelta(days=2), country="GB", client_app="browser", result="failure"),
        sign_in("carol@example.com", timedelta(days=1), country="GB", client_app="browser", result="success"),
        message("alice@example.com", timedelta(hours=1), subject="Quarterly numbers", verdict="clean",
                recipients=["bob@example.com", "x@partner.example", "y@partner.example"]),
        message("alice@example.com", timedelta(days=3), subject="Older", verdict="phish"),
        message("alice@example.com", timedelta(days=10), subject="Too old for the list"),
        *[message("carol@example.com", timedelta(minutes=10 + i), subject=f"Hello {i}") for i in range(3)],
    )  # fmt: skip
    return tenant


# ------------------------------------------------------------------------------------------------ access


def test_mailbox_pages_send_anonymous_visitors_to_login(client, directory):
    for url in (LIST, detail_url("alice@example.com"), DOMAINS):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_a_user_without_a_role_sees_no_mailbox_page(nobody_client, directory):
    for url in (LIST, detail_url("alice@example.com"), DOMAINS):
        assert nobody_client.get(url).status_code == 403


def test_every_role_opens_the_mailbox_pages(reader_client, operator_client, administrator_client, directory):
    for client in (reader_client, operator_client, administrator_client):
        for url in (LIST, detail_url("alice@example.com"), DOMAINS, f"{LIST}?format=csv"):
            assert client.get(url).status_code == 200


def test_an_unknown_mailbox_is_not_found(reader_client, directory):
    assert reader_client.get(reverse("console:mailbox_detail", args=[999_999])).status_code == 404


# ------------------------------------------------------------------------------------------------ list


def test_the_list_shows_vip_indicators_last_sign_in_and_sent_mail(reader_client, directory):
    html = reader_client.get(LIST).content.decode()
    assert rows_of(html) == ["alice@example.com", "bob@example.com", "carol@example.com"]
    assert "3 results" in html
    alice_row = html.split("alice@example.com</a>")[1].split("</tr>")[0]
    assert "Alice Ng" in alice_row and "Finance" in alice_row
    assert '<span class="badge badge-vip">VIP</span>' in alice_row
    assert "External forwarding</span> to drop@evil.example" in alice_row
    assert "Rule forwards externally</span> to collector@evil.example" in alice_row
    # The rule's internal target is not flagged.
    assert "bob@example.com" not in alice_row.split("Rule forwards externally")[1]
    assert "1 inbox rule" in alice_row and "1 delegation" in alice_row
    assert f'<time datetime="{(NOW - timedelta(hours=2)).isoformat()}">' in alice_row
    assert "success" in alice_row and "FR" in alice_row
    # Sent in 24 h / 7 days: one message an hour ago, one three days ago, one ten days ago (not counted).
    assert '<td class="num">1</td>\n    <td class="num">2</td>' in alice_row
    bob_row = html.split("bob@example.com</a>")[1].split("</tr>")[0]
    assert "badge-vip" not in bob_row and "not VIP" in bob_row
    assert "never" in bob_row and ">none<" in bob_row
    assert '<td class="num">0</td>\n    <td class="num">0</td>' in bob_row


def test_search_matches_address_and_display_name(reader_client, directory):
    assert rows_of(reader_client.get(LIST, {"q": "CAROL@"}).content.decode()) == ["carol@example.com"]
    assert rows_of(reader_client.get(LIST, {"q": "stone"}).content.decode()) == ["bob@example.com"]
    html = reader_client.get(LIST, {"q": "nobody-like-this"}).content.decode()
    assert rows_of(html) == [] and "0 results" in html


def test_the_department_filter_offers_the_departments_in_the_data(reader_client, directory):
    html = reader_client.get(LIST).content.decode()
    assert '<option value="Finance">Finance</option>' in html
    assert '<option value="Sales">Sales</option>' in html
    finance = reader_client.get(LIST, {"department": "Finance"}).content.decode()
    assert rows_of(finance) == ["alice@example.com", "carol@example.com"]
    unknown = reader_client.get(LIST, {"department": "Legal"}).content.decode()
    assert "Select a valid choice" in unknown  # shown as a form error, not applied


def test_the_vip_filter(reader_client, directory):
    assert rows_of(reader_client.get(LIST, {"vip": "yes"}).content.decode()) == ["alice@example.com"]
    assert rows_of(reader_client.get(LIST, {"vip": "no"}).content.decode()) == [
        "bob@example.com",
        "carol@example.com",
    ]


def test_the_tenant_filter_and_column_appear_only_with_several_tenants(
    reader_client, directory, other_tenant
):
    html = reader_client.get(LIST).content.decode()
    assert 'name="tenant"' in html and '<th scope="col">Tenant</th>' in html
    ingest(other_tenant, mailbox_event("dave@other.example", display_name="Dave"))
    everyone = reader_client.get(LIST).content.decode()
    assert "dave@other.example" in rows_of(everyone) and len(rows_of(everyone)) == 4
    only_other = reader_client.get(LIST, {"tenant": "other"}).content.decode()
    assert rows_of(only_other) == ["dave@other.example"]
    assert "Other organisation" in only_other


def test_a_single_tenant_shows_no_tenant_filter(reader_client, directory):
    html = reader_client.get(LIST).content.decode()
    assert 'name="tenant"' not in html
    assert '<th scope="col">Tenant</th>' not in html


def test_sorts_by_messages_sent_in_the_last_24_hours_and_by_name(reader_client, directory):
    by_sent = reader_client.get(LIST, {"ordering": "-sent_24h"}).content.decode()
    assert rows_of(by_sent) == ["carol@example.com", "alice@example.com", "bob@example.com"]
    by_name = reader_client.get(LIST, {"ordering": "-name"}).content.decode()
    assert rows_of(by_name) == ["carol@example.com", "bob@example.com", "alice@example.com"]
    by_sign_in = reader_client.get(LIST, {"ordering": "-last_sign_in"}).content.decode()
    assert rows_of(by_sign_in) == ["alice@example.com", "carol@example.com", "bob@example.com"]  # never: last
    by_first_seen = reader_client.get(LIST, {"ordering": "first_seen"}).content.decode()
    assert len(rows_of(by_first_seen)) == 3


def test_the_filters_are_kept_in_the_pagination_and_export_links(reader_client, directory):
    html = reader_client.get(LIST, {"department": "Finance", "ordering": "-sent_24h"}).content.decode()
    assert "?department=Finance&amp;ordering=-sent_24h&amp;format=csv" in html


def test_csv_export_has_the_filtered_rows_and_their_indicators(reader_client, directory):
    response = reader_client.get(LIST, {"department": "Finance", "format": "csv"})
    assert response["Content-Type"] == "text/csv"
    rows = csv_rows(response)
    assert [r["address"] for r in rows] == ["alice@example.com", "carol@example.com"]
    alice = rows[0]
    assert alice["vip"] == "True" and alice["display_name"] == "Alice Ng"
    assert alice["forwarding_to"] == "drop@evil.example" and alice["forwarding_external"] == "True"
    assert alice["rule_forwarding_external"] == "collector@evil.example"
    assert alice["inbox_rules"] == "1" and alice["delegations"] == "1"
    assert alice["sent_24h"] == "1" and alice["sent_7d"] == "2"
    assert alice["last_sign_in"] == (NOW - timedelta(hours=2)).isoformat()
    assert rows[1]["sent_24h"] == "3" and rows[1]["forwarding_external"] == "False"


def test_csv_export_neutralises_formulas_in_names(reader_client, tenant):
    ingest(tenant, mailbox_event("eve@example.com", display_name="=HYPERLINK(1)"))
    rows = csv_rows(reader_client.get(LIST, {"format": "csv"}))
    assert rows[0]["display_name"] == "'=HYPERLINK(1)"


def test_an_htmx_request_gets_only_the_rows(reader_client, directory):
    response = reader_client.get(LIST, {"q": "alice"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="rows">')
    assert "<h1>" not in html and rows_of(html) == ["alice@example.com"]


def _busy_directory(tenant: Tenant, start: int, stop: int) -> None:
    """Mailboxes ``start`` to ``stop``, each with a rule, forwarding, a delegation, a sign-in and two
    messages."""
    events = []
    for i in range(start, stop):
        address = f"user{i:03}@example.com"
        events += [
            mailbox_event(address, display_name=f"User {i}", department=f"Dept {i % 5}", vip=i % 7 == 0),
            rule(address, f"r-{i}", timedelta(hours=3), actions={"redirect_to": "x@evil.example"}),
            {"type": "forwarding", "time": _at(timedelta(hours=2)), "mailbox": address,
             "forward_to": "peer@example.com"},
            {"type": "delegation", "time": _at(timedelta(hours=2)), "mailbox": address,
             "delegate": "boss@example.com", "access": "send_as", "operation": "added"},
            sign_in(address, timedelta(hours=1), country="DE", result="success"),
            message(address, timedelta(hours=1)),
            message(address, timedelta(days=2)),
        ]  # fmt: skip
    ingest(tenant, *events)


def _list_queries(client, params: dict) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(LIST, params)
        body = response.content.decode() if not response.streaming else b"".join(response.streaming_content)
    assert response.status_code == 200
    return len(captured), body


@pytest.mark.parametrize("params", [{}, {"ordering": "-sent_24h"}, {"format": "csv"}])
def test_the_list_query_count_does_not_grow_with_its_rows(
    reader_client, tenant, params, django_assert_max_num_queries
):
    _busy_directory(tenant, 0, 10)
    few, body = _list_queries(reader_client, params)
    _busy_directory(tenant, 10, 60)
    with django_assert_max_num_queries(few):
        many, body = _list_queries(reader_client, params)
    assert many == few
    if "format" in params:
        assert body.count(b"\n") == 61  # the header and every mailbox
    else:
        assert "60 results" in body and len(rows_of(body)) == 50


# ------------------------------------------------------------------------------------------------ detail


def test_the_detail_shows_the_mailbox_and_its_account_state(reader_client, directory):
    html = reader_client.get(detail_url("alice@example.com")).content.decode()
    assert "<h1>alice@example.com</h1>" in html
    assert "Alice Ng" in html and "Finance" in html and '<span class="badge badge-vip">VIP</span>' in html
    assert "Account enabled" in html
    first_seen = (NOW - timedelta(days=20)).isoformat()
    assert f'<time datetime="{first_seen}">' in html


def test_the_detail_shows_current_rules_forwarding_and_delegations(reader_client, directory):
    html = reader_client.get(detail_url("alice@example.com")).content.decode()
    rules = html.split('id="rules-heading"')[1].split("Inbox rule history")[0]
    assert "Invoices" in rules and "forwards externally" in rules
    assert "Subject contains: invoice, payment" in rules
    assert 'collector@evil.example <span class="badge badge-alert">external</span>' in rules
    assert 'bob@example.com <span class="badge">internal</span>' in rules
    assert "Mark as read: yes" in rules and "Enabled" in rules
    forwarding = html.split('id="forwarding-heading"')[1].split("Forwarding history")[0]
    assert 'drop@evil.example <span class="badge badge-alert">external</span>' in forwarding
    assert "keeping a copy" in forwarding
    delegations = html.split('id="delegations-heading"')[1].split("Delegation history")[0]
    assert "helper@outside.example" in delegations and "Full access" in delegations


def test_the_detail_shows_recent_sign_ins_and_sent_mail(reader_client, directory):
    html = reader_client.get(detail_url("alice@example.com")).content.decode()
    sign_ins = html.split('id="sign-ins-heading"')[1].split('id="sent-heading"')[0]
    assert sign_ins.index("FR") < sign_ins.index("GB")  # newest first
    assert "legacy protocol" in sign_ins and "curl/8" in sign_ins and "Failure" in sign_ins
    sent = html.split('id="sent-heading"')[1]
    assert "3 messages" in sent
    assert sent.index("Quarterly numbers") < sent.index("Older") < sent.index("Too old for the list")
    quarterly = sent.split("Quarterly numbers")[1].split("</tr>")[0]
    # One internal recipient, two external.
    assert '<td class="num">1</td>' in quarterly and '<td class="num">2</td>' in quarterly
    assert '<span class="badge badge-alert">Phish</span>' in sent


def test_the_history_shows_when_a_rule_appeared_and_was_removed(reader_client, tenant):
    _, created_id = ingest(
        tenant,
        mailbox_event("frank@example.com"),
        rule("frank@example.com", "hide-1", timedelta(days=2), name="Hide replies",
             actions={"move_to_folder": "RSS Feeds", "redirect_to": "thief@evil.example"}),
    )  # fmt: skip
    [deleted_id] = ingest(tenant, rule("frank@example.com", "hide-1", timedelta(days=1), operation="deleted"))
    html = reader_client.get(detail_url("frank@example.com")).content.decode()
    rules = html.split('id="rules-heading"')[1].split('id="forwarding-heading"')[0]
    current, history = rules.split("Inbox rule history")
    assert "The mailbox has no inbox rule." in current
    deleted, created = history.split("</tr>")[1], history.split("</tr>")[2]  # newest first
    assert "Deleted" in deleted and "Hide replies" in deleted
    assert f'<time datetime="{(NOW - timedelta(days=1)).isoformat()}">' in deleted
    assert "Created" in created and "Hide replies" in created
    assert f'<time datetime="{(NOW - timedelta(days=2)).isoformat()}">' in created
    assert "Move to folder: RSS Feeds" in created
    assert 'thief@evil.example <span class="badge badge-alert">external</span>' in created
    assert f'<code class="small">{deleted_id}</code>' in deleted
    assert f'<code class="small">{created_id}</code>' in created
    assert "<td>test<div" in deleted and "<td>test<div" in created  # the channel it came through


def test_the_history_marks_a_late_older_change_as_history_only(reader_client, tenant):
    ingest(
        tenant,
        mailbox_event("gina@example.com"),
        {
            "type": "forwarding",
            "time": _at(timedelta(hours=1)),
            "mailbox": "gina@example.com",
            "forward_to": None,
        },
    )
    ingest(
        tenant,
        {"type": "forwarding", "time": _at(timedelta(hours=3)), "mailbox": "gina@example.com",
         "forward_to": "late@evil.example"},
    )  # fmt: skip
    html = reader_client.get(detail_url("gina@example.com")).content.decode()
    forwarding = html.split('id="forwarding-heading"')[1].split('id="delegations-heading"')[0]
    assert "Forwarding is off." in forwarding
    assert "late@evil.example" in forwarding and "History only" in forwarding


def test_sent_mail_pages_past_the_first_fifty(reader_client, tenant):
    ingest(
        tenant,
        mailbox_event("hank@example.com"),
        *[message("hank@example.com", timedelta(minutes=i + 1), subject=f"Msg {i:02}") for i in range(55)],
    )
    url = detail_url("hank@example.com")
    first = reader_client.get(url).content.decode()
    assert "55 messages" in first and "Msg 00" in first and "Msg 49" in first and "Msg 50" not in first
    assert "?sent_page=2" in first
    second = reader_client.get(url, {"sent_page": 2}).content.decode()
    assert "Msg 50" in second and "Msg 54" in second and "Msg 49" not in second
    partial = reader_client.get(url, {"sent_page": 2}, headers={"HX-Request": "true"}).content.decode()
    assert partial.lstrip().startswith('<section id="sent"') and "<h1>" not in partial
    assert "Msg 00" in reader_client.get(url, {"sent_page": "junk"}).content.decode()
    # Past the end: the last page.
    assert "Msg 54" in reader_client.get(url, {"sent_page": 99}).content.decode()


def test_the_detail_links_open_alerts_and_the_active_restriction(reader_client, administrator, directory):
    alice = mailbox("alice@example.com")
    policy = ensure_default_policies(directory)[AlertPolicy.Kind.FORWARDING]
    raise_alert(policy, Detection(alice.pk, [Evidence("forwarding", "fw-1", NOW - timedelta(hours=5))], {}))
    restriction, _ = restrict_by_hand(alice, actor=administrator, reason_text="Sending spam")
    html = reader_client.get(detail_url("alice@example.com")).content.decode()
    assert f'href="{reverse("console:alert_list")}?user=alice%40example.com&amp;status=open"' in html
    assert "1 open alert<" in html
    assert f'href="{reverse("console:restricted_user_detail", args=[restriction.pk])}"' in html
    assert "Restricted from sending" in html
    quiet = reader_client.get(detail_url("bob@example.com")).content.decode()
    assert "0 open alerts" in quiet and "Not restricted" in quiet


def test_the_detail_query_count_does_not_grow_with_its_rows(
    reader_client, tenant, django_assert_max_num_queries
):
    def fill(address: str, count: int) -> str:
        ingest(
            tenant,
            mailbox_event(address),
            *[rule(address, f"r{i}", timedelta(hours=i + 1), actions={"forward_to": "a@evil.example"})
              for i in range(count)],
            *[sign_in(address, timedelta(minutes=i + 1)) for i in range(count)],
            *[message(address, timedelta(minutes=i + 1)) for i in range(count)],
            *[{"type": "delegation", "time": _at(timedelta(hours=1)), "mailbox": address, "access": "send_as",
               "delegate": f"d{i}@example.com", "operation": "added"} for i in range(count)],
        )  # fmt: skip
        return detail_url(address)

    small, large = fill("small@example.com", 2), fill("large@example.com", 40)
    with CaptureQueriesContext(connection) as captured:
        assert reader_client.get(small).status_code == 200
    with django_assert_max_num_queries(len(captured)):
        assert reader_client.get(large).status_code == 200


# ------------------------------------------------------------------------------------------------ escaping


def test_telemetry_strings_are_escaped_everywhere(reader_client, tenant):
    ingest(
        tenant,
        mailbox_event("ivan@example.com", display_name=XSS, department=XSS),
        message("ivan@example.com", timedelta(hours=1), subject=XSS),
        rule("ivan@example.com", "x-1", timedelta(hours=2), name=XSS, conditions={"subject_contains": XSS}),
        sign_in("ivan@example.com", timedelta(hours=1), user_agent=XSS),
    )
    for url in (LIST, detail_url("ivan@example.com")):
        html = reader_client.get(url).content.decode()
        assert XSS not in html
        assert ESCAPED_XSS in html


# ------------------------------------------------------------------------------------------------ domains


def test_readers_see_accepted_domains_read_only(reader_client, directory):
    html = reader_client.get(DOMAINS).content.decode()
    assert '<th scope="row">example.com</th>' in html
    assert "Declared by mailbox events" in html
    assert "Add domain" not in html and "Remove</button>" not in html


@pytest.mark.parametrize("persona", ["reader_client", "operator_client"])
def test_only_administrators_may_add_or_remove_accepted_domains(request, persona, directory):
    client = request.getfixturevalue(persona)
    assert client.post(DOMAINS, {"domain": "new.example"}).status_code == 403
    accepted = AcceptedDomain.objects.get(domain="example.com")
    remove = reverse("console:accepted_domain_remove", args=[accepted.pk])
    assert client.post(remove).status_code == 403
    assert set(AcceptedDomain.objects.values_list("domain", flat=True)) == {"example.com"}


def test_an_administrator_adds_an_accepted_domain_with_an_audit_row(
    administrator_client, administrator, tenant
):
    form = administrator_client.get(DOMAINS).content.decode()
    assert '<label for="id_domain">Domain</label>' in form and 'name="tenant"' not in form
    response = administrator_client.post(DOMAINS, {"domain": " Corp.Example "})
    assert response.status_code == 302 and response["Location"] == DOMAINS
    accepted = AcceptedDomain.objects.get(tenant=tenant, domain="corp.example")
    assert accepted.source == AcceptedDomain.Source.ADMIN
    audit = AuditEvent.objects.get(action="mailboxes.accepted_domain.added", target_id=str(accepted.pk))
    assert audit.actor == administrator
    assert "corp.example is now an accepted domain" in administrator_client.get(DOMAINS).content.decode()


def test_an_invalid_or_repeated_domain_is_a_form_error(administrator_client, directory):
    invalid = administrator_client.post(DOMAINS, {"domain": "not a domain"})
    assert invalid.status_code == 400 and "is not a valid domain name" in invalid.content.decode()
    repeated = administrator_client.post(DOMAINS, {"domain": "example.com"})
    assert repeated.status_code == 400 and "already an accepted domain" in repeated.content.decode()


def test_an_administrator_picks_the_tenant_when_there_are_several(administrator_client, tenant, other_tenant):
    assert 'name="tenant"' in administrator_client.get(DOMAINS).content.decode()
    administrator_client.post(DOMAINS, {"domain": "other.example", "tenant": "other"})
    assert AcceptedDomain.objects.filter(tenant=other_tenant, domain="other.example").exists()


def test_an_administrator_removes_an_accepted_domain_with_an_audit_row(administrator_client, directory):
    accepted = AcceptedDomain.objects.get(domain="example.com")
    remove = reverse("console:accepted_domain_remove", args=[accepted.pk])
    assert administrator_client.get(remove).status_code == 405
    response = administrator_client.post(remove)
    assert response.status_code == 302
    assert not AcceptedDomain.objects.filter(pk=accepted.pk).exists()
    assert AuditEvent.objects.filter(
        action="mailboxes.accepted_domain.removed", target_id=str(accepted.pk)
    ).exists()
    assert Mailbox.objects.filter(address="alice@example.com").exists()  # mailboxes stay
