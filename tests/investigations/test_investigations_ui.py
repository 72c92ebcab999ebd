"""The investigation pages and the action center: the list (filters, CSV, annotated counts, a flat query
count), the detail (summary, SVG graph, sections, polling status, release link), and the operators' POSTs —
each behind a confirmation — with readers seeing no buttons and refused (403)."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.urls import reverse

from core.models import AuditEvent
from investigations.actions import run_approved_action
from investigations.models import Investigation, RemediationAction
from mailboxes.models import MailboxForwarding
from restricted_users.services import restrict_user
from tests.builders import assert_list_queries_do_not_grow

from .action_builders import (
    EVIL,
    HOME,
    Status,
    Type,
    approve_now,
    forward,
    make_action,
    make_alert,
    make_investigation,
    make_mailbox,
)

pytestmark = pytest.mark.django_db

LIST = reverse("console:investigations")
CENTER = reverse("console:action_center")
DECIDE = reverse("console:action_decide")
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def alice(tenant):
    return make_mailbox(tenant)


@pytest.fixture
def investigation(tenant, alice):
    forward(alice)
    investigation = make_investigation(alice, alert=make_alert(tenant, alice))
    make_action(investigation, Type.TURN_OFF_FORWARDING, label=f"Forwarding to {EVIL}")
    make_action(investigation, Type.REVOKE_SESSIONS, label=f"Sessions of {alice.address}")
    return investigation


def _detail(investigation: Investigation) -> str:
    return reverse("console:investigation_detail", args=[investigation.pk])


def _action(investigation: Investigation, action_type: str) -> RemediationAction:
    return investigation.actions.get(action_type=action_type)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# ------------------------------------------------------------------------------------------------ the list


def test_the_list_shows_each_investigation_with_its_counts(reader_client, investigation):
    response = reader_client.get(LIST)
    assert response.status_code == 200
    row = response.context["object_list"][0]
    assert (row.threat_count, row.action_count, row.pending_count) == (1, 2, 2)
    body = response.content.decode()
    assert f"#{investigation.pk}" in body and "alice@contoso.example" in body
    assert "Suspicious email forwarding activity" in body
    assert "2 to decide" in body


def test_the_list_filters_by_status_and_user_and_exports_csv(reader_client, tenant, investigation):
    other = make_investigation(make_mailbox(tenant, f"bob@{HOME}"), status=Investigation.Status.NO_THREATS)
    assert [i.pk for i in reader_client.get(LIST, {"status": "open"}).context["object_list"]] == [
        investigation.pk
    ]
    assert [i.pk for i in reader_client.get(LIST, {"user": "bob"}).context["object_list"]] == [other.pk]
    response = reader_client.get(LIST, {"ordering": "-threats", "format": "csv"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["id", "tenant", "status"]
    assert {row[0] for row in rows[1:]} == {str(investigation.pk), str(other.pk)}


def test_the_list_costs_the_same_queries_for_ten_or_fifty_investigations(
    reader_client, tenant, django_assert_max_num_queries
):
    def make(count: int, start: int) -> None:
        for n in range(start, start + count):
            investigation = make_investigation(make_mailbox(tenant, f"user{n}@{HOME}"), alert=None)
            make_action(investigation, Type.FORCE_PASSWORD_RESET)

    assert_list_queries_do_not_grow(reader_client, LIST, make, django_assert_max_num_queries)


def test_htmx_filtering_returns_only_the_rows(reader_client, investigation):
    response = reader_client.get(LIST, {"status": "open"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="rows">')
    assert "<html" not in body


# ------------------------------------------------------------------------------------------------ the detail


def test_the_detail_shows_summary_graph_and_every_section(reader_client, investigation):
    response = reader_client.get(_detail(investigation))
    assert response.status_code == 200
    body = response.content.decode()
    for heading in ("Key findings", "Status", "Summary", "Pending actions"):
        assert f">{heading}</h2>" in body, heading
    # Every other section is a tab at its own URL (issue 16), listed in the tab bar of every tab.
    sections = {"graph": "Graph", "alerts": "Alerts", "mailbox": "Mailbox", "evidence": "Evidence",
                "clusters": "Mail clusters", "log": "Log", "history": "History"}  # fmt: skip
    for tab, heading in sections.items():
        url = reverse("console:investigation_tab", args=[investigation.pk, tab])
        assert f'href="{url}"' in body
        page = reader_client.get(url)
        assert page.status_code == 200 and f">{heading}</h2>" in page.content.decode(), tab
    graph = reader_client.get(reverse("console:investigation_tab", args=[investigation.pk, "graph"]))
    body = graph.content.decode()
    svg = body[body.index("<svg") : body.index("</svg>")]
    assert 'class="node node-alert"' in svg and 'class="node node-mailbox"' in svg
    assert 'class="node node-malicious"' in svg and 'class="node node-action-pending"' in svg
    assert 'class="node node-result-pending_action"' in svg
    assert " style=" not in svg  # the CSP blocks inline styles
    assert svg.count("<a href=") == svg.count('<g class="node ')  # every node is a link
    evidence = reader_client.get(reverse("console:investigation_tab", args=[investigation.pk, "evidence"]))
    assert "Forwards every message to an external address first seen today" in evidence.content.decode()
    mailbox = reader_client.get(reverse("console:investigation_tab", args=[investigation.pk, "mailbox"]))
    assert f"To {EVIL}" in mailbox.content.decode()
    assert (
        reader_client.get(reverse("console:investigation_tab", args=[investigation.pk, "nope"])).status_code
        == 404
    )


def test_telemetry_shown_on_the_pages_is_escaped(reader_client, investigation):
    action = _action(investigation, Type.TURN_OFF_FORWARDING)
    RemediationAction.objects.filter(pk=action.pk).update(target_label=XSS)
    investigation.findings.update(entity_label=XSS)
    evidence = reverse("console:investigation_tab", args=[investigation.pk, "evidence"])
    graph = reverse("console:investigation_tab", args=[investigation.pk, "graph"])
    for url in (_detail(investigation), evidence, graph, CENTER):
        body = reader_client.get(url).content.decode()
        assert XSS not in body
        assert "&lt;img src=x onerror=alert(1)&gt;" in body


def test_while_the_analyzers_run_the_status_panel_polls_and_reloads_the_page_when_done(reader_client, alice):
    running = make_investigation(alice, status=Investigation.Status.RUNNING)
    status_url = reverse("console:investigation_status", args=[running.pk])
    body = reader_client.get(_detail(running)).content.decode()
    assert f'hx-get="{status_url}"' in body and 'hx-trigger="every 2s"' in body
    polled = reader_client.get(status_url, HTTP_HX_REQUEST="true")
    assert polled.status_code == 200 and 'hx-trigger="every 2s"' in polled.content.decode()
    Investigation.objects.filter(pk=running.pk).update(status=Investigation.Status.PENDING_ACTION)
    finished = reader_client.get(status_url, HTTP_HX_REQUEST="true")
    assert finished["HX-Refresh"] == "true"
    assert 'hx-trigger="every 2s"' not in reader_client.get(_detail(running)).content.decode()


def test_a_remediated_investigation_links_to_the_release_of_the_active_restriction(
    operator_client, operator, investigation
):
    restriction, _ = restrict_user(
        investigation.mailbox,
        policy_name="Email sending limit exceeded",
        reason={},
        expires_at=None,
        source="policy",
    )
    for action in investigation.actions.all():
        approve_now(action, operator)
        run_approved_action(action.pk)
    investigation.refresh_from_db()
    assert investigation.status == Investigation.Status.REMEDIATED
    body = operator_client.get(_detail(investigation)).content.decode()
    release = reverse("console:restricted_user_detail", args=[restriction.pk])
    assert f'<a href="{release}">open the restriction and its release checklist</a>' in body


# ------------------------------------------------------------------------------------------------ permissions


def test_readers_see_no_buttons_and_their_forged_posts_are_refused(reader_client, investigation, operator):
    pending = _action(investigation, Type.TURN_OFF_FORWARDING)
    for url in (_detail(investigation), CENTER):
        body = reader_client.get(url).content.decode()
        assert "Approve…" not in body and "Reject…" not in body
        assert 'id="bulk"' not in body
        assert "Stop investigation" not in body
    forged = [
        (DECIDE, {"ids": [pending.pk], "decision": "approve", "confirm": "yes"}),
        (reverse("console:action_undo", args=[pending.pk]), {"comment": "x", "confirm": "yes"}),
        (reverse("console:action_manual", args=[pending.pk]), {"outcome": "done", "confirm": "yes"}),
        (reverse("console:investigation_stop", args=[investigation.pk]), {"comment": "x", "confirm": "yes"}),
    ]
    for url, data in forged:
        assert reader_client.post(url, data).status_code == 403, url
    pending.refresh_from_db()
    assert pending.status == Status.PENDING
    investigation.refresh_from_db()
    assert investigation.status == Investigation.Status.PENDING_ACTION


def test_users_without_a_role_cannot_open_the_pages(nobody_client, investigation):
    for url in (LIST, _detail(investigation), CENTER):
        assert nobody_client.get(url).status_code == 403


def test_operators_see_the_decision_buttons(operator_client, investigation):
    body = operator_client.get(_detail(investigation)).content.decode()
    assert "Approve…" in body and "Reject…" in body and 'id="bulk"' in body
    assert "Stop investigation…" in body


# ------------------------------------------------------------------------------------------------ decisions


@pytest.mark.django_db(transaction=True)
def test_approving_asks_for_confirmation_then_executes_and_says_so(operator_client, investigation):
    """Committed for real, so the approval's task runs (in-process) before the page answers."""
    action = _action(investigation, Type.TURN_OFF_FORWARDING)
    data = {"ids": [action.pk], "decision": "approve", "next": _detail(investigation)}
    confirm = operator_client.post(DECIDE, data)
    assert confirm.status_code == 200
    assert "Approve 1 action?" in confirm.content.decode()
    action.refresh_from_db()
    assert action.status == Status.PENDING
    done = operator_client.post(DECIDE, {**data, "confirm": "yes"}, follow=True)
    assert done.redirect_chain[-1][0] == _detail(investigation)
    assert "1 action approved. 1 completed already." in _messages(done)
    action.refresh_from_db()
    assert action.status == Status.COMPLETED
    assert MailboxForwarding.objects.get(mailbox=investigation.mailbox).forward_to is None


def test_a_reject_without_comment_is_refused_on_the_confirmation(operator_client, investigation):
    action = _action(investigation, Type.REVOKE_SESSIONS)
    data = {"ids": [action.pk], "decision": "reject", "confirm": "yes", "comment": ""}
    response = operator_client.post(DECIDE, data)
    assert response.status_code == 400
    assert "Give a comment saying why the action is rejected." in response.content.decode()
    done = operator_client.post(DECIDE, {**data, "comment": "Expected: travel"}, follow=True)
    assert "1 action rejected." in _messages(done)
    action.refresh_from_db()
    assert (action.status, action.decision_comment) == (Status.REJECTED, "Expected: travel")


def test_bulk_decisions_from_the_action_center_may_mix_types(operator_client, tenant, investigation):
    other = make_investigation(make_mailbox(tenant, f"bob@{HOME}"))
    second = make_action(other, Type.REVOKE_SESSIONS)
    first = _action(investigation, Type.REVOKE_SESSIONS)
    forwarding = _action(investigation, Type.TURN_OFF_FORWARDING)
    mixed = operator_client.post(
        DECIDE, {"ids": [first.pk, second.pk, forwarding.pk], "decision": "approve", "next": CENTER}
    ).content.decode()
    assert "Approve 3 actions?" in mixed and "2 × Revoke" in mixed and "1 × Turn off" in mixed
    confirm = operator_client.post(DECIDE, {"ids": [first.pk, second.pk], "decision": "reject"})
    assert "Reject 2 actions?" in confirm.content.decode()
    done = operator_client.post(
        DECIDE, {"ids": [first.pk, second.pk], "decision": "reject", "comment": "Known VPN", "confirm": "yes"}
    )
    assert done.status_code == 302
    assert set(
        RemediationAction.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True)
    ) == {Status.REJECTED}


def test_the_action_center_shows_pending_then_history(operator_client, operator, investigation):
    pending = operator_client.get(CENTER)
    assert {a.action_type for a in pending.context["object_list"]} == {
        Type.TURN_OFF_FORWARDING,
        Type.REVOKE_SESSIONS,
    }
    action = approve_now(_action(investigation, Type.REVOKE_SESSIONS), operator)
    run_approved_action(action.pk)
    history = operator_client.get(CENTER, {"status": "history"})
    assert [a.pk for a in history.context["object_list"]] == [action.pk]
    by_type = operator_client.get(CENTER, {"action_type": "revoke_sessions", "status": ""})
    assert [a.pk for a in by_type.context["object_list"]] == [action.pk]


@pytest.mark.django_db(transaction=True)
def test_undo_from_the_page_asks_why_then_restores(operator_client, operator, investigation):
    action = approve_now(_action(investigation, Type.TURN_OFF_FORWARDING), operator)
    run_approved_action(action.pk)
    body = operator_client.get(_detail(investigation)).content.decode()
    undo_url = reverse("console:action_undo", args=[action.pk])
    assert f'action="{undo_url}"' in body
    confirm = operator_client.post(undo_url, {})
    assert "Why is it undone? (required)" in confirm.content.decode()
    refused = operator_client.post(undo_url, {"confirm": "yes", "comment": ""})
    assert refused.status_code == 400
    done = operator_client.post(undo_url, {"confirm": "yes", "comment": "Legitimate forwarding"}, follow=True)
    assert _messages(done) == [f"“{action}” undone."]
    action.refresh_from_db()
    assert action.status == Status.UNDONE
    assert MailboxForwarding.objects.get(mailbox=investigation.mailbox).forward_to == EVIL


def test_manual_steps_are_marked_done_from_the_page(operator_client, operator, investigation, settings):
    settings.CONNECTOR_KINDS = {"builtin": "tests.investigations.fake_connectors.ManualConnector"}
    action = approve_now(_action(investigation, Type.REVOKE_SESSIONS), operator)
    run_approved_action(action.pk)
    body = operator_client.get(_detail(investigation)).content.decode()
    assert "Manual step:</strong> In the identity provider, revoke every sign-in session" in body
    url = reverse("console:action_manual", args=[action.pk])
    assert "Mark done" in operator_client.post(url, {"outcome": "done"}).content.decode()
    operator_client.post(url, {"outcome": "done", "confirm": "yes", "comment": "Done in the portal"})
    action.refresh_from_db()
    assert action.status == Status.COMPLETED


def test_stopping_an_investigation_rejects_its_open_actions(operator_client, operator, investigation):
    url = reverse("console:investigation_stop", args=[investigation.pk])
    confirm = operator_client.post(url, {})
    assert "Why is it stopped? (required)" in confirm.content.decode()
    done = operator_client.post(url, {"confirm": "yes", "comment": "Handled by the mail team"}, follow=True)
    assert any("stopped" in m for m in _messages(done))
    investigation.refresh_from_db()
    assert investigation.status == Investigation.Status.TERMINATED_BY_USER
    assert set(investigation.actions.values_list("status", flat=True)) == {Status.REJECTED}
    assert AuditEvent.objects.filter(action="investigations.investigation.stopped", actor=operator).exists()


def test_a_foreign_next_url_is_not_followed(operator_client, investigation):
    action = _action(investigation, Type.REVOKE_SESSIONS)
    response = operator_client.post(
        DECIDE,
        {
            "ids": [action.pk],
            "decision": "reject",
            "comment": "no",
            "confirm": "yes",
            "next": "https://evil.example/",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == CENTER
    assert re.match(r"^/", response["Location"])
