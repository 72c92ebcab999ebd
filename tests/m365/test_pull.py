"""Telemetry pulls from a Microsoft 365 tenant, against the local fake over HTTPS: the real MSAL and HTTP
code runs, only Microsoft is replaced."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from alerts.models import Alert
from m365.models import DirectoryUser, PullCursor, PullRun, Source
from m365.pull import pull_connection, pull_source
from mailboxes.models import (
    AcceptedDomain,
    Delegation,
    DirectoryChange,
    InboxRule,
    Mailbox,
    MailboxForwarding,
    SignIn,
)
from mailflow.models import MessageEvent
from restricted_users.models import Restriction
from tests.m365 import fake_m365 as fake

pytestmark = pytest.mark.django_db

GRAPH_PATH = "/graph/v1.0"


def ago(**kwargs):
    return timezone.now() - timedelta(**kwargs)


@pytest.fixture
def contoso(m365_settings):
    """A small tenant: two verified domains, three members, a guest and a member without a mailbox."""
    tenant = m365_settings
    tenant.domains = [
        {"id": "contoso.com", "isVerified": True},
        {"id": "contoso.onmicrosoft.com", "isVerified": True},
        {"id": "unverified.example", "isVerified": False},
    ]
    tenant.users = [
        fake.user("alice@contoso.com", display_name="Alice", department="Finance"),
        fake.user("bob@contoso.com", display_name="Bob"),
        fake.user("carol@contoso.com", display_name="Carol"),
        fake.user("partner_fabrikam.com#EXT#@contoso.onmicrosoft.com", guest=True),
    ]
    no_mail = fake.user("svc-scanner@contoso.com")
    no_mail["mail"] = None
    tenant.users.append(no_mail)
    return tenant


def pull_directory(connection):
    """The domains and users first, so the telemetry pulled next maps to known mailboxes."""
    pull_source(connection, Source.DOMAINS)
    pull_source(connection, Source.USERS)


def runs(source):
    return PullRun.objects.filter(source=source).order_by("started_at", "id")


def test_first_pull_maps_domains_members_sent_mail_and_sign_ins(contoso, m365_connection):
    contoso.message_traces = [
        fake.trace(
            "alice@contoso.com", "bob@contoso.com", ago(hours=3), subject="Lunch?", message_id="<m1@x>"
        ),
        fake.trace(
            "alice@contoso.com", "ext@fabrikam.com", ago(hours=3), subject="Lunch?", message_id="<m1@x>"
        ),
        fake.trace("someone@fabrikam.com", "alice@contoso.com", ago(hours=2), subject="inbound"),
    ]
    contoso.sign_ins = [fake.sign_in("alice@contoso.com", ago(hours=1), ip="203.0.113.7", country="NL")]

    pull_connection(m365_connection, force=True)

    tenant = m365_connection.tenant
    assert sorted(AcceptedDomain.objects.filter(tenant=tenant).values_list("domain", flat=True)) == [
        "contoso.com",
        "contoso.onmicrosoft.com",
    ]
    assert sorted(Mailbox.objects.filter(tenant=tenant).values_list("address", flat=True)) == [
        "alice@contoso.com",
        "bob@contoso.com",
        "carol@contoso.com",
    ]
    alice = Mailbox.objects.get(tenant=tenant, address="alice@contoso.com")
    assert (alice.display_name, alice.department) == ("Alice", "Finance")
    # One message event for the two trace rows of the outbound message; inbound mail is not "sent mail".
    message = MessageEvent.objects.get(tenant=tenant)
    assert message.sender == alice
    assert sorted(message.recipients) == ["bob@contoso.com", "ext@fabrikam.com"]
    assert message.internet_message_id == "<m1@x>"
    sign_in = SignIn.objects.get(tenant=tenant)
    assert (sign_in.ip, sign_in.country, sign_in.client_app, sign_in.result) == (
        "203.0.113.7",
        "NL",
        "browser",
        "success",
    )
    assert all(run.status == PullRun.Status.OK for run in PullRun.objects.all()), list(
        PullRun.objects.values("source", "status", "error")
    )


def test_an_incremental_pull_reads_only_the_new_window_and_stores_nothing_twice(
    contoso, m365_connection, settings
):
    contoso.message_traces = [
        fake.trace("alice@contoso.com", "x@fabrikam.com", ago(hours=5), message_id="<a>")
    ]
    pull_connection(m365_connection, force=True)
    cursor = PullCursor.objects.get(connection=m365_connection, source=Source.MESSAGE_TRACE)
    first_watermark = cursor.watermark
    assert first_watermark is not None

    contoso.message_traces.append(
        fake.trace(
            "bob@contoso.com", "y@fabrikam.com", first_watermark + timedelta(minutes=1), message_id="<b>"
        )
    )
    contoso.requests.clear()
    with time_machine.travel(first_watermark + timedelta(minutes=10), tick=True):
        pull_source(m365_connection, Source.MESSAGE_TRACE)

    tenant = m365_connection.tenant
    assert sorted(
        MessageEvent.objects.filter(tenant=tenant).values_list("internet_message_id", flat=True)
    ) == [
        "<a>",
        "<b>",
    ]
    trace_requests = [r for r in contoso.requests if r.path.endswith("/messageTraces")]
    assert len(trace_requests) == 1
    # The second window starts the overlap before the first one's end, to re-read late rows.
    overlap_start = first_watermark - timedelta(seconds=settings.M365_OVERLAP_SECONDS)
    assert f"ge {overlap_start:%Y-%m-%dT%H:%M:%S}Z" in trace_requests[0].query["$filter"]
    cursor.refresh_from_db()
    assert cursor.watermark > first_watermark
    assert runs(Source.MESSAGE_TRACE).last().duplicates == 0


def test_it_follows_next_links_through_every_page(contoso, m365_connection):
    contoso.page_size = 10
    contoso.message_traces = [
        fake.trace("alice@contoso.com", f"r{i}@fabrikam.com", ago(hours=4, minutes=i), message_id=f"<p{i}>")
        for i in range(35)
    ]
    pull_connection(m365_connection, force=True)

    assert MessageEvent.objects.filter(tenant=m365_connection.tenant).count() == 35
    run = runs(Source.MESSAGE_TRACE).last()
    assert run.pages == 4
    assert run.records == 35
    assert sum("$skiptoken" in r.query or "skiptoken" in r.path for r in contoso.requests) >= 3


def test_a_429_is_retried_after_the_retry_after_it_names(contoso, m365_connection):
    contoso.sign_ins = [fake.sign_in("bob@contoso.com", ago(hours=1), ip="198.51.100.1")]
    pull_directory(m365_connection)
    contoso.sign_ins.append(fake.sign_in("bob@contoso.com", ago(minutes=1), ip="198.51.100.2"))
    contoso.throttle(f"{GRAPH_PATH}/auditLogs/signIns", times=1, retry_after=1)
    contoso.requests.clear()

    run = pull_source(m365_connection, Source.SIGN_INS)

    assert run.status == PullRun.Status.OK
    assert run.throttled == 1
    sign_in_requests = [r for r in contoso.requests if r.path.endswith("/auditLogs/signIns")]
    assert [r.status for r in sign_in_requests][:2] == [429, 200]
    waited = sign_in_requests[1].at - sign_in_requests[0].at
    assert waited >= timedelta(seconds=1)
    assert SignIn.objects.filter(ip="198.51.100.2").exists()


def test_a_retry_after_longer_than_we_wait_stops_the_pull_and_the_next_one_resumes(contoso, m365_connection):
    pull_directory(m365_connection)
    contoso.sign_ins = [fake.sign_in("bob@contoso.com", ago(minutes=1), ip="198.51.100.9")]
    contoso.throttle(f"{GRAPH_PATH}/auditLogs/signIns", times=1, retry_after=3600)

    failed = pull_source(m365_connection, Source.SIGN_INS)
    assert failed.status == PullRun.Status.FAILED
    assert "3600" in failed.error
    cursor = PullCursor.objects.get(connection=m365_connection, source=Source.SIGN_INS)
    assert cursor.consecutive_failures == 1

    assert pull_source(m365_connection, Source.SIGN_INS).status == PullRun.Status.OK
    assert SignIn.objects.filter(ip="198.51.100.9").exists()


def test_an_expired_token_is_refreshed_once_and_the_pull_goes_on(contoso, m365_connection):
    pull_directory(m365_connection)
    issued = contoso.tokens_issued
    contoso.expire_tokens()
    contoso.sign_ins = [fake.sign_in("carol@contoso.com", ago(minutes=1), ip="192.0.2.44")]

    run = pull_source(m365_connection, Source.SIGN_INS)

    assert run.status == PullRun.Status.OK, run.error
    assert contoso.tokens_issued == issued + 1
    statuses = [r.status for r in contoso.requests if r.path.endswith("/auditLogs/signIns")]
    assert statuses[-2:] == [401, 200]
    assert SignIn.objects.filter(ip="192.0.2.44").exists()


def test_a_malformed_record_is_rejected_with_a_clear_error_and_the_rest_of_the_page_is_stored(
    contoso, m365_connection
):
    good = fake.trace("alice@contoso.com", "x@fabrikam.com", ago(hours=2), message_id="<good>")
    no_recipient = fake.trace("alice@contoso.com", "y@fabrikam.com", ago(hours=2), message_id="<bad>")
    no_recipient["recipientAddress"] = None
    bad_ip = fake.sign_in("bob@contoso.com", ago(hours=1), ip="not-an-ip")
    contoso.message_traces = [good, no_recipient]
    contoso.sign_ins = [bad_ip, fake.sign_in("bob@contoso.com", ago(hours=1), ip="192.0.2.1")]

    pull_connection(m365_connection, force=True)

    tenant = m365_connection.tenant
    assert list(MessageEvent.objects.filter(tenant=tenant).values_list("internet_message_id", flat=True)) == [
        "<good>"
    ]
    trace_run = runs(Source.MESSAGE_TRACE).last()
    assert trace_run.status == PullRun.Status.PARTIAL
    assert trace_run.rejected == 1
    assert trace_run.errors == [
        {
            "record": no_recipient["id"],
            "error": f"message trace record {no_recipient['id']} has no recipientAddress",
        }
    ]
    sign_in_run = runs(Source.SIGN_INS).last()
    assert sign_in_run.rejected == 1
    assert "ip" in sign_in_run.errors[0]["error"] and bad_ip["id"] in sign_in_run.errors[0]["error"]
    assert list(SignIn.objects.filter(tenant=tenant).values_list("ip", flat=True)) == ["192.0.2.1"]
    cursor = PullCursor.objects.get(connection=m365_connection, source=Source.MESSAGE_TRACE)
    assert cursor.rejected_total == 1


def test_records_holding_nul_characters_are_rejected_alone_and_the_cursor_moves_on(contoso, m365_connection):
    """Issue 15, row 2: a NUL in an id or a user agent failed the whole page and blocked the cursor."""
    nul_id = fake.sign_in("bob@contoso.com", ago(hours=1), ip="192.0.2.7")
    nul_id["id"] = "sign-in\x00one"
    nul_agent = fake.sign_in("bob@contoso.com", ago(hours=1), ip="192.0.2.8")
    nul_agent["userAgent"] = "Mozilla\x00"
    contoso.sign_ins = [nul_id, nul_agent, fake.sign_in("bob@contoso.com", ago(hours=1), ip="192.0.2.9")]

    pull_connection(m365_connection, force=True)

    run = runs(Source.SIGN_INS).last()
    assert run.status == PullRun.Status.PARTIAL, run.error
    assert run.rejected == 2
    assert any("\\u0000" in error["record"] for error in run.errors), run.errors  # shown escaped
    assert all("NUL" in error["error"] for error in run.errors), run.errors
    assert list(SignIn.objects.filter(tenant=m365_connection.tenant).values_list("ip", flat=True)) == [
        "192.0.2.9"
    ]
    assert PullCursor.objects.get(connection=m365_connection, source=Source.SIGN_INS).rejected_total == 2


def test_a_pull_interrupted_mid_way_resumes_at_the_page_it_stopped_without_loss_or_duplicates(
    contoso, m365_connection, settings
):
    settings.M365_MAX_RETRIES = 0  # the failure stops the pull at once
    pull_directory(m365_connection)
    contoso.page_size = 10
    contoso.message_traces = [
        fake.trace("bob@contoso.com", f"r{i}@fabrikam.com", ago(minutes=50 - i), message_id=f"<r{i}>")
        for i in range(30)
    ]
    # The third page keeps failing: the worker gives up (as if it died) after storing two pages.
    contoso.fail(f"{GRAPH_PATH}/admin/exchange/tracing/messageTraces", status=500, times=99, after=2)

    interrupted = pull_source(m365_connection, Source.MESSAGE_TRACE)

    assert interrupted.status == PullRun.Status.FAILED
    tenant = m365_connection.tenant
    # Two pages stored, less the row of the second page's last second, held back (in the cursor) in case
    # the message's other recipients are on the next page.
    assert MessageEvent.objects.filter(tenant=tenant).count() == 19
    cursor = PullCursor.objects.get(connection=m365_connection, source=Source.MESSAGE_TRACE)
    assert "skiptoken" in cursor.state["next"]

    contoso.clear_failures()
    contoso.requests.clear()
    resumed = pull_source(m365_connection, Source.MESSAGE_TRACE)

    assert resumed.status == PullRun.Status.OK and resumed.resumed
    assert MessageEvent.objects.filter(tenant=tenant).count() == 30
    assert resumed.accepted == 11 and resumed.duplicates == 0
    first = next(r for r in contoso.requests if r.path.endswith("/messageTraces"))
    assert "$skiptoken" in first.query  # it went straight to the page it had not stored
    cursor.refresh_from_db()
    assert cursor.state == {}


def test_guests_and_users_without_a_mailbox_are_never_mailboxes(contoso, m365_connection):
    contoso.sign_ins = [
        fake.sign_in("partner_fabrikam.com#EXT#@contoso.onmicrosoft.com", ago(hours=1), ip="192.0.2.9")
    ]
    pull_connection(m365_connection, force=True)

    tenant = m365_connection.tenant
    assert not Mailbox.objects.filter(tenant=tenant, address__contains="partner").exists()
    assert not Mailbox.objects.filter(tenant=tenant, address__startswith="svc-scanner").exists()
    assert not SignIn.objects.filter(tenant=tenant).exists()
    assert DirectoryUser.objects.filter(connection=m365_connection).count() == 3


def test_audit_log_rule_forwarding_and_permission_changes_become_directory_changes(
    contoso, m365_connection, django_capture_on_commit_callbacks
):
    contoso.audit_records = [
        fake.audit(
            "New-InboxRule",
            "alice@contoso.com",
            ago(hours=2),
            object_id="alice@contoso.com\\Invoices",
            parameters={
                "Name": "Invoices",
                "SubjectContainsWords": "invoice;payment",
                "ForwardTo": "drop@evil.example",
                "StopProcessingRules": "True",
            },
        ),
        fake.audit(
            "Set-Mailbox",
            "admin@contoso.com",
            ago(hours=2),
            object_id="bob@contoso.com",
            parameters={
                "Identity": "bob@contoso.com",
                "ForwardingSmtpAddress": "smtp:bob.home@gmail.example",
                "DeliverToMailboxAndForward": "True",
            },
        ),
        fake.audit(
            "Add-MailboxPermission",
            "admin@contoso.com",
            ago(hours=2),
            object_id="carol@contoso.com",
            parameters={
                "Identity": "carol@contoso.com",
                "User": "bob@contoso.com",
                "AccessRights": "FullAccess",
            },
        ),
        fake.audit("Get-Mailbox", "admin@contoso.com", ago(hours=2), object_id="x", parameters={}),
    ]
    # The rule is in the mailbox too, as Graph shows it (the inbox-rule read matches it by name).
    contoso.inbox_rules = {
        "alice@contoso.com": [
            fake.rule(
                "AQAAAJ5dZqA=",
                "Invoices",
                forward_to=["drop@evil.example"],
                subject_contains=["invoice", "payment"],
            )
        ]
    }

    with django_capture_on_commit_callbacks(execute=True):
        pull_connection(m365_connection, force=True)

    tenant = m365_connection.tenant
    rule = InboxRule.objects.get(tenant=tenant, mailbox__address="alice@contoso.com")
    assert rule.name == "Invoices"
    assert rule.actions == {"forward_to": ["drop@evil.example"]}
    assert rule.conditions == {"subject_contains": ["invoice", "payment"]}
    forwarding = MailboxForwarding.objects.get(mailbox__address="bob@contoso.com")
    assert (forwarding.forward_to, forwarding.keep_copy) == ("bob.home@gmail.example", True)
    delegation = Delegation.objects.get(mailbox__address="carol@contoso.com")
    assert (delegation.delegate, delegation.access) == ("bob@contoso.com", "full_access")
    # The same detections as any other source.
    policies = set(Alert.objects.filter(tenant=tenant).values_list("title", flat=True))
    assert "Suspicious email forwarding activity" in policies
    assert "Mailbox delegation added" in policies
    # The subscription was started on first use.
    assert any(r.path.endswith("/subscriptions/start") for r in contoso.requests)


def test_the_inbox_rule_read_catches_rules_the_audit_log_missed_and_removals(contoso, m365_connection):
    contoso.inbox_rules = {
        "alice@contoso.com": [fake.rule("r-1", "RSS", move_to="RSS Feeds", mark_as_read=True)],
        "bob@contoso.com": [fake.rule("r-2", "Fwd", forward_to=["x@evil.example"])],
    }
    pull_connection(m365_connection, force=True)
    tenant = m365_connection.tenant
    assert set(InboxRule.objects.filter(tenant=tenant).present().values_list("rule_id", flat=True)) == {
        "r-1",
        "r-2",
    }

    contoso.inbox_rules["bob@contoso.com"] = []
    pull_source(m365_connection, Source.INBOX_RULES)

    assert set(InboxRule.objects.filter(tenant=tenant).present().values_list("rule_id", flat=True)) == {"r-1"}


def test_one_mailbox_failing_does_not_stop_the_inbox_rule_read_of_the_others(contoso, m365_connection):
    pull_connection(m365_connection, force=True)
    alice = DirectoryUser.objects.get(connection=m365_connection, address="alice@contoso.com")
    contoso.inbox_rules = {"carol@contoso.com": [fake.rule("r-9", "Fwd", redirect_to=["y@evil.example"])]}
    contoso.fail(f"{GRAPH_PATH}/users/{alice.graph_id}/mailFolders/inbox/messageRules", status=403, times=1)

    run = pull_source(m365_connection, Source.INBOX_RULES)

    assert run.status == PullRun.Status.PARTIAL
    assert run.rejected == 1 and "alice@contoso.com" in run.errors[0]["error"]
    assert InboxRule.objects.filter(mailbox__address="carol@contoso.com", rule_id="r-9").exists()


def test_a_sending_burst_pulled_from_the_tenant_restricts_the_user_like_any_other_source(
    contoso, m365_connection, django_capture_on_commit_callbacks
):
    pull_directory(m365_connection)
    start = ago(minutes=40)
    contoso.message_traces = [
        fake.trace(
            "carol@contoso.com",
            f"target{i}@fabrikam.com",
            start + timedelta(seconds=i),
            message_id=f"<burst{i // 50}>",
        )
        for i in range(600)
    ]
    contoso.page_size = 1000

    with django_capture_on_commit_callbacks(execute=True):
        pull_source(m365_connection, Source.MESSAGE_TRACE)

    carol = Mailbox.objects.get(tenant=m365_connection.tenant, address="carol@contoso.com")
    assert Alert.objects.filter(mailbox=carol, title="Email sending limit exceeded").exists()
    assert Restriction.objects.active().for_mailbox(carol).exists()


def test_a_timeout_is_retried_and_the_pull_goes_on(contoso, m365_connection, settings):
    pull_directory(m365_connection)
    settings.M365_TIMEOUT_SECONDS = 1
    contoso.sign_ins = [fake.sign_in("alice@contoso.com", ago(minutes=5), ip="192.0.2.77")]
    contoso.delay(f"{GRAPH_PATH}/auditLogs/signIns", seconds=2, times=1)

    run = pull_source(m365_connection, Source.SIGN_INS)

    assert run.status == PullRun.Status.OK, run.error
    assert SignIn.objects.filter(ip="192.0.2.77").exists()


def test_an_audit_pull_interrupted_between_content_blobs_resumes_without_reading_a_blob_twice(
    contoso, m365_connection, settings
):
    settings.M365_INITIAL_LOOKBACK_HOURS = 4  # one audit window
    settings.M365_MAX_RETRIES = 0  # the failure stops the pull at once
    pull_directory(m365_connection)
    contoso.page_size = 5  # one record per content blob
    contoso.audit_records = [
        fake.audit(
            "Add-MailboxPermission",
            "admin@contoso.com",
            ago(hours=3, minutes=-i),
            object_id="carol@contoso.com",
            parameters={
                "Identity": "carol@contoso.com",
                "User": f"user{i}@contoso.com",
                "AccessRights": "FullAccess",
            },
        )
        for i in range(6)
    ]
    contoso.fail("/manage/api/v1.0/", status=500, times=99, after=5)

    assert pull_source(m365_connection, Source.AUDIT_EXCHANGE).status == PullRun.Status.FAILED
    stored = Delegation.objects.filter(mailbox__address="carol@contoso.com").count()
    assert 0 < stored < 6

    contoso.clear_failures()
    contoso.requests.clear()
    resumed = pull_source(m365_connection, Source.AUDIT_EXCHANGE)

    assert resumed.status == PullRun.Status.OK and resumed.resumed
    assert Delegation.objects.filter(mailbox__address="carol@contoso.com").count() == 6
    assert resumed.duplicates == 0
    blob_reads = [r.path for r in contoso.requests if "/audit/" in r.path]
    assert len(blob_reads) == len(set(blob_reads)) == 6 - stored


def test_an_account_disabled_or_enabled_in_entra_id_shows_on_the_mailbox_with_its_history(
    contoso, m365_connection
):
    pull_directory(m365_connection)
    alice = Mailbox.objects.get(tenant=m365_connection.tenant, address="alice@contoso.com")
    assert alice.account_enabled

    contoso.users[0]["accountEnabled"] = False
    pull_source(m365_connection, Source.USERS)
    alice.refresh_from_db()
    assert not alice.account_enabled
    assert Mailbox.objects.filter(tenant=m365_connection.tenant, account_enabled=False).count() == 1
    change = DirectoryChange.objects.filter(mailbox=alice, source="connector").latest("id")
    assert change.state["account_enabled"] is False

    contoso.users[0]["accountEnabled"] = True
    pull_source(m365_connection, Source.USERS)
    pull_source(m365_connection, Source.USERS)  # unchanged: no new history row
    alice.refresh_from_db()
    assert alice.account_enabled
    assert DirectoryChange.objects.filter(mailbox=alice, source="connector", kind="mailbox").count() == 3
