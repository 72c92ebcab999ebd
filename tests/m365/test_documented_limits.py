"""Issue #19: the connector against what Microsoft documents, one test per row, against the strict fake (which
refuses what the real services refuse)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from investigations import actions
from investigations.models import RemediationAction
from m365 import mapping, services
from m365.client import M365Client, Unreachable
from m365.models import DirectoryUser, MovedMessage, PullCursor, PullRun, Source
from m365.pull import LIMITS, pull_connection, pull_source
from mailboxes.models import InboxRule, SignIn
from mailflow.models import MessageEvent
from tests.investigations.action_builders import approve_now, make_action, make_investigation, sent_messages
from tests.m365 import fake_m365 as fake

pytestmark = pytest.mark.django_db

Type = RemediationAction.Type
Status = RemediationAction.Status
GRAPH_PATH = "/graph/v1.0"


@pytest.fixture
def contoso(m365_settings):
    tenant = m365_settings
    tenant.domains = [fake.domain("contoso.com", default=True)]
    tenant.users = [fake.user("alice@contoso.com"), fake.user("bob@contoso.com")]
    return tenant


def ago(**delta) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


def pull_directory(connection) -> None:
    for source in (Source.DOMAINS, Source.USERS):
        assert pull_source(connection, source).status == PullRun.Status.OK


def after_an_outage(connection, source: str, *, outage: timedelta) -> PullCursor:
    """The directory pulled, and ``source`` last pulled ``outage`` ago (its cursor's watermark then)."""
    pull_directory(connection)
    cursor = PullCursor.objects.get_or_create(connection=connection, source=source)[0]
    cursor.watermark = timezone.now() - outage
    cursor.save()
    return cursor


def requests_to(tenant, suffix: str) -> list:
    return [r for r in tenant.requests if r.path.endswith(suffix)]


# Row 1: message trace setup, probed by Test connection; row 4: the Entra ID P1 licence, probed too.
def test_test_connection_names_the_missing_message_trace_principal_and_entra_licence(
    contoso, m365_connection
):
    contoso.trace_service_principal = False
    contoso.entra_premium = False

    result = services.test_connection(m365_connection)

    assert not result.ok
    assert result.missing == []  # every permission is granted: the prerequisites are what is missing
    assert "8bd644d1-64a1-4d4b-ae52-2e0cbf64e373" in result.message
    assert "Entra ID P1 or P2" in result.message
    assert len(result.prerequisites) == 2

    contoso.trace_service_principal = contoso.entra_premium = True
    assert services.test_connection(m365_connection).ok


# Row 9: the directory role the password and disable actions need, read from the token's wids claim.
def test_test_connection_names_the_missing_directory_role_for_password_and_disable(contoso, m365_connection):
    contoso.app_directory_roles = set()

    result = services.test_connection(m365_connection)

    assert not result.ok and result.missing == []
    [problem] = result.prerequisites
    assert "User Administrator" in problem and "Privileged Authentication Administrator" in problem


# Row 2: the trace window — whole-second Z bounds, span at most 10 days, start at most 90 days ago.
def test_after_a_long_outage_trace_windows_stay_within_10_days_and_90_days_and_the_gap_is_recorded(
    contoso, m365_connection
):
    cursor = after_an_outage(m365_connection, Source.MESSAGE_TRACE, outage=timedelta(days=120))
    contoso.message_traces = [
        fake.trace("alice@contoso.com", "x@fabrikam.com", ago(days=20), message_id="<m>")
    ]

    run = pull_source(m365_connection, Source.MESSAGE_TRACE)

    assert run.status == PullRun.Status.OK, run.error
    traces = requests_to(contoso, "/messageTraces")
    assert traces and all(r.status == 200 for r in traces)
    for request in traces:
        assert ".000" not in request.query["$filter"] and " lt " in request.query["$filter"]
    assert len(traces) == 10  # 90 days (less a margin) in windows of at most 10 days
    assert MessageEvent.objects.filter(internet_message_id="<m>").exists()
    cursor.refresh_from_db()
    [gap] = cursor.gaps
    assert mapping.parse_time(gap["to"]) - mapping.parse_time(gap["from"]) > timedelta(days=29)


# Row 3: trace rows share the message's id; recipients split across pages are one event, not conflicts.
def test_a_message_whose_recipients_straddle_pages_is_one_event_with_every_recipient(
    contoso, m365_connection
):
    pull_directory(m365_connection)
    contoso.page_size = 4
    recipients = [f"r{i}@fabrikam.com" for i in range(6)]
    contoso.message_traces = fake.traces("alice@contoso.com", recipients, ago(hours=2), message_id="<big>")
    contoso.message_traces += [
        fake.trace("bob@contoso.com", "y@fabrikam.com", ago(hours=3), message_id="<small>"),
    ]

    run = pull_source(m365_connection, Source.MESSAGE_TRACE)

    assert run.status == PullRun.Status.OK and run.rejected == 0, run.errors
    assert run.pages == 2
    big = MessageEvent.objects.get(internet_message_id="<big>")
    assert sorted(big.recipients) == recipients
    assert MessageEvent.objects.count() == 2


# Row 4: no $orderby on signIns (the fake refuses it, as Graph documents none); the licence 403 is clear.
def test_sign_ins_are_read_with_documented_options_and_a_missing_licence_says_so(contoso, m365_connection):
    pull_directory(m365_connection)
    contoso.sign_ins = [fake.sign_in("bob@contoso.com", ago(minutes=30), ip="198.51.100.4")]

    assert pull_source(m365_connection, Source.SIGN_INS).status == PullRun.Status.OK
    assert all("$orderby" not in r.query for r in requests_to(contoso, "/auditLogs/signIns"))
    assert SignIn.objects.filter(ip="198.51.100.4").exists()

    contoso.entra_premium = False
    with time_machine.travel(timezone.now() + timedelta(hours=1), tick=True):
        failed = pull_source(m365_connection, Source.SIGN_INS)
    assert failed.status == PullRun.Status.FAILED
    assert "Authentication_RequestFromNonPremiumTenantOrB2CTenant" in failed.error


# Row 5 and 6: the Management API URL carries the tenant GUID from the token, and PublisherIdentifier.
def test_the_audit_pull_addresses_the_tenant_by_guid_with_its_publisher_identifier(contoso, m365_connection):
    assert m365_connection.directory_id == "contoso-tenant-id"  # registered by a name, not the GUID
    pull_directory(m365_connection)

    run = pull_source(m365_connection, Source.AUDIT_EXCHANGE)

    assert run.status == PullRun.Status.OK, run.error
    feed = [r for r in contoso.requests if r.path.startswith("/manage/")]
    assert feed and all(f"/{contoso.tenant_id}/activity/feed" in r.path for r in feed)
    assert all(r.query.get("PublisherIdentifier") == contoso.tenant_id for r in feed)


# Row 6: a start older than 7 days is refused (AF20030): after a long outage the window is clamped.
def test_after_an_outage_longer_than_7_days_the_audit_pull_resumes_at_the_horizon_and_records_the_gap(
    contoso, m365_connection
):
    cursor = after_an_outage(m365_connection, Source.AUDIT_EXCHANGE, outage=timedelta(days=9))
    contoso.subscriptions["Audit.Exchange"] = {"contentType": "Audit.Exchange", "status": "enabled"}

    run = pull_source(m365_connection, Source.AUDIT_EXCHANGE)

    assert run.status == PullRun.Status.OK, run.error
    listings = requests_to(contoso, "/subscriptions/content")
    assert listings and all(r.status == 200 for r in listings)
    cursor.refresh_from_db()
    assert len(cursor.gaps) == 1
    assert LIMITS[Source.AUDIT_EXCHANGE].span == timedelta(hours=24)


# Row 7: real record shapes — ObjectId by user GUID (an admin acted), lower-case parameters, 7-digit times,
# UpdateInboxRules and numeric identities resolved by re-reading the mailbox's rules.
def test_real_audit_records_resolve_the_mailbox_owner_and_reread_rules_they_cannot_name(
    contoso, m365_connection
):
    contoso.users.append(fake.user("admin@contoso.com"))
    pull_directory(m365_connection)
    alice_id = DirectoryUser.objects.get(address="alice@contoso.com").graph_id
    bob_id = DirectoryUser.objects.get(address="bob@contoso.com").graph_id
    contoso.inbox_rules = {bob_id: [fake.rule("AQAAB", "Outlook rule", forward_to=["out@evil.example"])]}
    contoso.audit_records = [
        fake.audit(
            "New-InboxRule",
            "admin@contoso.com",  # an administrator created it in Alice's mailbox
            ago(hours=2),
            object_id=fake.rule_object_id("alice@contoso.com", "Exfil"),
            parameters={"name": "Exfil", "forwardto": "drop@evil.example"},
        ),
        fake.audit(
            "UpdateInboxRules",
            "bob@contoso.com",
            ago(hours=2, minutes=-1),
            object_id="",
            parameters={},
            properties={"RuleOperation": "AddMailboxRule", "RuleName": "Outlook rule"},
        ),
        fake.audit(
            "Set-InboxRule",
            "admin@contoso.com",
            ago(hours=2, minutes=-2),
            object_id="bob@contoso.com\\5764607523034234881",
            parameters={"Identity": "bob@contoso.com\\5764607523034234881", "Enabled": False},
        ),
    ]
    assert "." in contoso.audit_records[0]["CreationTime"] and ":" in contoso.audit_records[0]["ClientIP"]

    run = pull_source(m365_connection, Source.AUDIT_EXCHANGE)

    assert run.status == PullRun.Status.OK and run.rejected == 0, (run.error, run.errors)
    exfil = InboxRule.objects.get(name="Exfil")
    assert exfil.mailbox.address == "alice@contoso.com" and exfil.actions["forward_to"] == [
        "drop@evil.example"
    ]
    assert alice_id.lower() in fake.rule_object_id("alice@contoso.com", "Exfil").lower()
    outlook = InboxRule.objects.get(name="Outlook rule")
    assert outlook.mailbox.address == "bob@contoso.com" and outlook.rule_id == "AQAAB"
    # No phantom rule named by Exchange's numeric id.
    assert not InboxRule.objects.filter(name__regex=r"^\d+$").exists()
    assert len(requests_to(contoso, "/messageRules")) == 1  # Bob's rules read once for both records


# Row 8: the messageRule fields Graph documents beyond the basic ones.
def test_graph_rule_conditions_and_actions_are_all_mapped():
    state = mapping.graph_rule_state(
        {
            "displayName": "All of it",
            "conditions": {
                "fromAddresses": [{"emailAddress": {"address": "ceo@contoso.com"}}],
                "sentToAddresses": [{"emailAddress": {"address": "bob@contoso.com"}}],
                "headerContains": ["X-Priority"],
                "bodyOrSubjectContains": ["wire"],
                "senderContains": ["bank"],
            },
            "actions": {
                "forwardAsAttachmentTo": [{"emailAddress": {"address": "drop@evil.example"}}],
                "permanentDelete": True,
            },
        }
    )

    assert state["conditions"] == {
        "from": ["bank", "ceo@contoso.com"],
        "sent_to": ["bob@contoso.com"],
        "header_contains": ["X-Priority"],
        "body_or_subject_contains": ["wire"],
    }
    assert state["actions"] == {"forward_to": ["drop@evil.example"], "delete": True}


@pytest.fixture
def pulled(contoso, m365_connection):
    pull_connection(m365_connection, force=True)
    return contoso


def alice(connection):
    from mailboxes.models import Mailbox

    return Mailbox.objects.get(tenant=connection.tenant, address="alice@contoso.com")


# Row 9: password reset = random temporary password + force change, then sessions revoked.
def test_a_password_reset_sets_a_random_password_forces_a_change_and_revokes_sessions(
    pulled, m365_connection, operator
):
    action = approve_now(
        make_action(make_investigation(alice(m365_connection)), Type.FORCE_PASSWORD_RESET), operator
    )

    assert actions.run_approved_action(action.pk) == Status.COMPLETED

    [patch] = [r for r in pulled.requests if r.method == "PATCH"]
    profile = patch.json["passwordProfile"]
    assert profile["forceChangePasswordNextSignIn"] is True and len(profile["password"]) >= 16
    assert requests_to(pulled, "/revokeSignInSessions")[-1].status == 200
    action.refresh_from_db()
    assert profile["password"] not in action.result + str(action.connector_calls)


# Row 9: the role 403 and synced users give clear messages.
def test_without_the_directory_role_a_password_reset_fails_naming_the_role(pulled, m365_connection, operator):
    pulled.app_directory_roles = set()
    action = approve_now(
        make_action(make_investigation(alice(m365_connection)), Type.DISABLE_ACCOUNT), operator
    )

    assert actions.run_approved_action(action.pk) == Status.FAILED

    action.refresh_from_db()
    assert "User Administrator" in action.result and "Authorization_RequestDenied" in action.result


def test_a_user_synced_from_active_directory_gets_the_on_premises_step(pulled, m365_connection, operator):
    pulled.users[0]["onPremisesSyncEnabled"] = True
    action = approve_now(
        make_action(make_investigation(alice(m365_connection)), Type.FORCE_PASSWORD_RESET), operator
    )

    assert actions.run_approved_action(action.pk) == Status.MANUAL

    action.refresh_from_db()
    assert "on-premises Active Directory" in action.manual_step
    assert not [r for r in pulled.requests if r.method == "PATCH"]


# Row 10: soft delete keeps the new ids and source folder; undo moves back; a timed-out move is not resent.
def soft_delete_setup(pulled, connection, operator):
    mailbox = alice(connection)
    investigation = make_investigation(mailbox)
    cluster = sent_messages(mailbox, investigation, count=1)
    message = MessageEvent.objects.get(event_id__in=cluster.event_ids)
    message.recipients = ["bob@contoso.com"]
    message.internet_message_id = "<lure@contoso.com>"
    message.save()
    bob_id = DirectoryUser.objects.get(address="bob@contoso.com").graph_id
    pulled.mailbox_messages = {
        bob_id: [{**fake.message("<lure@contoso.com>", subject="Invoice", folder="archive"), "id": "msg-1"}]
    }
    action = approve_now(
        make_action(investigation, Type.SOFT_DELETE_MESSAGES, target={"cluster_id": cluster.pk}), operator
    )
    return action, bob_id


def test_soft_delete_keeps_the_new_ids_and_undo_moves_them_back_to_their_folder(
    pulled, m365_connection, operator
):
    action, bob_id = soft_delete_setup(pulled, m365_connection, operator)

    assert actions.run_approved_action(action.pk) == Status.COMPLETED
    [moved] = MovedMessage.objects.filter(action_id=action.pk)
    in_store = pulled.mailbox_messages[bob_id][0]
    assert (moved.message_id, moved.source_folder_id) == (in_store["id"], "archive")
    assert in_store["parentFolderId"] == "recoverableitemsdeletions" and moved.message_id != "msg-1"

    action.refresh_from_db()
    actions.undo_action(action, actor=operator, comment="false positive")

    assert pulled.mailbox_messages[bob_id][0]["parentFolderId"] == "archive"
    moved.refresh_from_db()
    assert moved.restored_at is not None


def test_a_move_that_times_out_is_not_sent_again_but_checked(pulled, m365_connection, operator, settings):
    action, bob_id = soft_delete_setup(pulled, m365_connection, operator)
    settings.M365_TIMEOUT_SECONDS = 1
    pulled.delay(f"{GRAPH_PATH}/users/{bob_id}/messages/msg-1/move", seconds=2)  # done, but answered late

    # No answer and the message still where it was: retried later, not failed and not re-sent now.
    assert actions.run_approved_action(action.pk) == Status.APPROVED
    assert len(requests_to(pulled, "/move")) == 0  # the fake has not even finished it
    time.sleep(1.5)
    assert actions.run_approved_action(action.pk) == Status.COMPLETED

    assert len(requests_to(pulled, "/move")) == 1
    [moved] = MovedMessage.objects.filter(action_id=action.pk)
    assert moved.message_id == pulled.mailbox_messages[bob_id][0]["id"]


# Row 11: a user with mail but no mailbox is not an error every hour.
def test_a_user_without_a_mailbox_is_skipped_by_the_rules_pull_not_counted_as_an_error(
    contoso, m365_connection
):
    contoso.mailboxless = {"bob@contoso.com"}
    pull_directory(m365_connection)

    run = pull_source(m365_connection, Source.INBOX_RULES)

    assert run.status == PullRun.Status.OK and run.rejected == 0, run.errors
    assert [r.status for r in requests_to(contoso, "/messageRules")].count(404) == 1


# Row 12: MSAL's token calls get the timeout too (MSAL ignores timeout= with an http_client).
def test_a_token_request_that_hangs_times_out(contoso, m365_connection, settings):
    settings.M365_TIMEOUT_SECONDS = 1
    contoso.delay(f"/{contoso.directory_id}/oauth2/v2.0/token", seconds=5, times=10)
    client = M365Client(m365_connection)

    started = time.monotonic()
    with pytest.raises(Unreachable):
        client.token()
    assert time.monotonic() - started < 4


# Row 13: rows arriving late (after their window was read) are picked up by the next pull's overlap.
def test_a_sign_in_that_arrives_late_is_read_by_the_next_pulls_overlap(contoso, m365_connection, settings):
    pull_directory(m365_connection)
    assert pull_source(m365_connection, Source.SIGN_INS).status == PullRun.Status.OK
    watermark = PullCursor.objects.get(connection=m365_connection, source=Source.SIGN_INS).watermark
    contoso.sign_ins = [fake.sign_in("bob@contoso.com", watermark - timedelta(minutes=5), ip="192.0.2.77")]

    with time_machine.travel(timezone.now() + timedelta(minutes=10), tick=True):
        again = pull_source(m365_connection, Source.SIGN_INS)
        repeat = None
        with time_machine.travel(timezone.now() + timedelta(minutes=10), tick=True):
            repeat = pull_source(m365_connection, Source.SIGN_INS)

    assert again.status == PullRun.Status.OK and again.accepted == 1
    assert SignIn.objects.filter(ip="192.0.2.77").count() == 1
    assert repeat.duplicates == 1 and repeat.accepted == 0  # the overlap re-read stores nothing twice


# Optional: non-interactive sign-ins (Graph beta), read in the same window when the setting is on.
def test_non_interactive_sign_ins_are_read_from_beta_only_when_the_setting_is_on(
    contoso, m365_connection, settings
):
    pull_directory(m365_connection)
    contoso.sign_ins = [
        fake.sign_in("bob@contoso.com", ago(minutes=40), ip="198.51.100.10"),
        fake.sign_in("bob@contoso.com", ago(minutes=20), ip="203.0.113.66", interactive=False),
    ]

    assert pull_source(m365_connection, Source.SIGN_INS).status == PullRun.Status.OK
    assert list(SignIn.objects.values_list("ip", flat=True)) == ["198.51.100.10"]
    assert not [r for r in contoso.requests if r.path.startswith("/graph/beta/")]

    settings.M365_NON_INTERACTIVE_SIGN_INS = True
    with time_machine.travel(timezone.now() + timedelta(minutes=10), tick=True):
        run = pull_source(m365_connection, Source.SIGN_INS)

    assert run.status == PullRun.Status.OK, run.error
    assert sorted(SignIn.objects.values_list("ip", flat=True)) == ["198.51.100.10", "203.0.113.66"]
    [beta] = [r for r in contoso.requests if r.path == "/graph/beta/auditLogs/signIns"]
    assert "signInEventTypes/any(t: t eq 'nonInteractiveUser')" in beta.query["$filter"]
    cursor = PullCursor.objects.get(connection=m365_connection, source=Source.SIGN_INS)
    assert cursor.state == {}
