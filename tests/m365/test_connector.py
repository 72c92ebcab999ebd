"""Approved remediation actions carried out in a Microsoft 365 tenant through Graph (the local fake), with
every call kept on the action; what Graph cannot do ends in "Manual step required" with the exact step."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from investigations import actions
from investigations.models import Investigation, RemediationAction
from m365.models import DirectoryUser
from m365.pull import pull_connection
from mailboxes.models import InboxRule, Mailbox
from tests.investigations.action_builders import approve_now, make_action, make_investigation
from tests.m365 import fake_m365 as fake

pytestmark = pytest.mark.django_db

Type = RemediationAction.Type
Status = RemediationAction.Status


@pytest.fixture
def tenant_with_rule(m365_settings, m365_connection, django_capture_on_commit_callbacks):
    """Contoso with Alice, whose mailbox holds a rule forwarding invoices outside, pulled into the console."""
    m365 = m365_settings
    m365.domains = [{"id": "contoso.com", "isVerified": True}]
    m365.users = [fake.user("alice@contoso.com", display_name="Alice"), fake.user("bob@contoso.com")]
    alice_id = m365.users[0]["id"]
    m365.inbox_rules = {
        alice_id: [
            fake.rule(
                "AQAAAJ5dZqA=", "Invoices", forward_to=["drop@evil.example"], subject_contains=["invoice"]
            )
        ]
    }
    with django_capture_on_commit_callbacks(execute=True):  # detection and the investigation follow
        pull_connection(m365_connection, force=True)
    return m365


def alice(connection) -> Mailbox:
    return Mailbox.objects.get(tenant=connection.tenant, address="alice@contoso.com")


def graph_id(connection, address="alice@contoso.com") -> str:
    return DirectoryUser.objects.get(connection=connection, address=address).graph_id


@pytest.fixture
def rule_removal(tenant_with_rule, m365_connection) -> RemediationAction:
    """The action Alice's investigation proposes: remove the forwarding rule."""
    investigation = Investigation.objects.get(mailbox=alice(m365_connection))
    return investigation.actions.get(action_type=Type.REMOVE_INBOX_RULE)


@pytest.fixture
def removed_rule(rule_removal, operator, django_capture_on_commit_callbacks) -> RemediationAction:
    """The rule removal, approved by the operator and carried out (in-process)."""
    with django_capture_on_commit_callbacks(execute=True):
        actions.decide_actions(rule_removal, actor=operator, approve=True)
    rule_removal.refresh_from_db()
    return rule_removal


def test_the_pulled_rule_raises_an_alert_whose_investigation_proposes_removing_it(rule_removal):
    assert rule_removal.target["rule_id"] == "AQAAAJ5dZqA="


def test_an_approved_remove_inbox_rule_issues_the_delete_and_records_the_result(
    tenant_with_rule, m365_connection, rule_removal, operator, django_capture_on_commit_callbacks
):
    action = rule_removal
    tenant_with_rule.requests.clear()

    with django_capture_on_commit_callbacks(execute=True):  # the approved action runs in-process
        actions.decide_actions(action, actor=operator, approve=True)

    action.refresh_from_db()
    assert action.status == Status.COMPLETED, action.result
    user_id = graph_id(m365_connection)
    deletes = [r for r in tenant_with_rule.requests if r.method == "DELETE"]
    assert [r.path for r in deletes] == [
        f"/graph/v1.0/users/{user_id}/mailFolders/inbox/messageRules/AQAAAJ5dZqA="
    ]
    assert tenant_with_rule.inbox_rules[user_id] == []
    assert "Invoices" in action.result and "in Microsoft 365" in action.result
    delete_call = next(c for c in action.connector_calls if c["method"] == "DELETE")
    assert delete_call["status"] == 204
    assert delete_call["request_id"] == deletes[0].response_headers["request-id"]
    # Mirrored in the console's directory.
    assert (
        not InboxRule.objects.filter(mailbox=alice(m365_connection), rule_id="AQAAAJ5dZqA=")
        .present()
        .exists()
    )


def test_undo_recreates_the_rule_in_the_mailbox(tenant_with_rule, m365_connection, removed_rule, operator):
    actions.undo_action(removed_rule, actor=operator, comment="The user needs it")

    rules = tenant_with_rule.inbox_rules[graph_id(m365_connection)]
    assert [rule["displayName"] for rule in rules] == ["Invoices"]
    assert rules[0]["actions"]["forwardTo"][0]["emailAddress"]["address"] == "drop@evil.example"
    assert any(
        c["method"] == "POST" and c["status"] == 201
        for c in RemediationAction.objects.get(pk=removed_rule.pk).connector_calls
    )


def test_undo_does_not_create_the_rule_twice_when_an_earlier_attempt_created_it(
    tenant_with_rule, m365_connection, removed_rule, operator
):
    # An earlier undo's POST went through but its answer was lost.
    tenant_with_rule.inbox_rules[graph_id(m365_connection)].append(fake.rule("AQAAANEW=", "Invoices"))
    tenant_with_rule.requests.clear()

    actions.undo_action(removed_rule, actor=operator, comment="The user needs it")

    assert [r["displayName"] for r in tenant_with_rule.inbox_rules[graph_id(m365_connection)]] == ["Invoices"]
    assert not [r for r in tenant_with_rule.requests if r.method == "POST"]


@pytest.mark.parametrize(
    ("action_type", "method", "path", "body"),
    [
        (Type.DISABLE_ACCOUNT, "PATCH", "", {"accountEnabled": False}),
        (Type.REVOKE_SESSIONS, "POST", "/revokeSignInSessions", None),
    ],
)
def test_account_actions_reach_the_tenant(
    tenant_with_rule, m365_connection, operator, action_type, method, path, body
):
    investigation = make_investigation(alice(m365_connection))
    action = approve_now(make_action(investigation, action_type), operator)
    tenant_with_rule.requests.clear()

    assert actions.run_approved_action(action.pk) == Status.COMPLETED

    user_id = graph_id(m365_connection)
    sent = [r for r in tenant_with_rule.requests if r.method == method]
    assert [(r.path, r.json) for r in sent] == [(f"/graph/v1.0/users/{user_id}{path}", body)]
    action.refresh_from_db()
    assert action.connector_calls[-1]["status"] in (200, 204)


def test_soft_delete_moves_the_internal_copies_to_recoverable_items(
    tenant_with_rule, m365_connection, operator
):
    from tests.investigations.action_builders import sent_messages

    mailbox = alice(m365_connection)
    investigation = make_investigation(mailbox)
    cluster = sent_messages(mailbox, investigation, count=1)
    from mailflow.models import MessageEvent

    message = MessageEvent.objects.get(event_id__in=cluster.event_ids)
    message.recipients = ["bob@contoso.com", "x@fabrikam.example"]
    message.internet_message_id = "<lure@contoso.com>"
    message.save()
    bob_id = graph_id(m365_connection, "bob@contoso.com")
    tenant_with_rule.mailbox_messages = {
        bob_id: [
            {
                "id": "msg-1",
                "internetMessageId": "<lure@contoso.com>",
                "subject": "Invoice",
                "parentFolderId": "inbox",
            }
        ]
    }
    action = approve_now(
        make_action(investigation, Type.SOFT_DELETE_MESSAGES, target={"cluster_id": cluster.pk}), operator
    )

    assert actions.run_approved_action(action.pk) == Status.COMPLETED

    moves = [r for r in tenant_with_rule.requests if r.path.endswith("/move")]
    assert [(r.path, r.json) for r in moves] == [
        (f"/graph/v1.0/users/{bob_id}/messages/msg-1/move", {"destinationId": "recoverableitemsdeletions"})
    ]


def test_forwarding_has_no_graph_api_so_the_action_shows_the_exact_manual_step(
    tenant_with_rule, m365_connection, operator
):
    from tests.investigations.action_builders import forward

    mailbox = alice(m365_connection)
    forward(mailbox, "drop@evil.example")
    action = approve_now(make_action(make_investigation(mailbox), Type.TURN_OFF_FORWARDING), operator)

    assert actions.run_approved_action(action.pk) == Status.MANUAL

    action.refresh_from_db()
    assert "Set-Mailbox -Identity alice@contoso.com -ForwardingSmtpAddress $null" in action.manual_step


def test_a_refused_call_fails_the_action_with_its_reason_and_keeps_the_call(
    tenant_with_rule, m365_connection, operator
):
    investigation = make_investigation(alice(m365_connection))
    action = approve_now(make_action(investigation, Type.REVOKE_SESSIONS), operator)
    tenant_with_rule.granted_roles["https://graph.microsoft.com"].remove("User.RevokeSessions.All")
    tenant_with_rule.granted_roles["https://graph.microsoft.com"] = [
        r for r in tenant_with_rule.granted_roles["https://graph.microsoft.com"] if r != "User.ReadWrite.All"
    ]
    from m365.client import forget_apps

    forget_apps()

    assert actions.run_approved_action(action.pk) == Status.FAILED

    action.refresh_from_db()
    assert "403" in action.result and "Authorization_RequestDenied" in action.result
    assert action.connector_calls[-1]["status"] == 403
    assert action.connector_calls[-1]["request_id"]


def test_a_throttled_action_is_retried_later_not_failed(
    tenant_with_rule, m365_connection, operator, settings
):
    investigation = make_investigation(alice(m365_connection))
    action = approve_now(make_action(investigation, Type.REVOKE_SESSIONS), operator)
    tenant_with_rule.throttle("/graph/v1.0/users/", times=1, retry_after=3600)

    assert actions.run_approved_action(action.pk) == Status.APPROVED

    action.refresh_from_db()
    assert "3600" in action.result
    assert action.next_attempt_at > timezone.now() + timedelta(seconds=1)


def test_block_sender_restricts_in_the_console_and_asks_for_the_exchange_block(
    tenant_with_rule, m365_connection, operator
):
    from restricted_users.models import Restriction

    mailbox = alice(m365_connection)
    action = approve_now(make_action(make_investigation(mailbox), Type.BLOCK_SENDER), operator)

    assert actions.run_approved_action(action.pk) == Status.MANUAL

    action.refresh_from_db()
    assert Restriction.objects.active().for_mailbox(mailbox).get().expires_at is None
    assert 'New-TransportRule -Name "SOC console: block alice@contoso.com" -From alice@contoso.com' in (
        action.manual_step
    )
    assert "Remove-TransportRule" in action.manual_step
