"""The policy service end to end in-process: a real server on an ephemeral port, real Redis and PostgreSQL.

Tasks run in-process (eager); the server's worker threads see the data because these tests commit
(``transactional_db``).
"""

from __future__ import annotations

import socket
import threading
import urllib.request

import pytest

from restricted_users import state
from restricted_users.models import Restriction
from tests.conftest import wait_for

from .conftest import ALL_ATTESTED, DOMAIN, DUNNO, REJECT, PolicyClient

ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"
OUTSIDE = "someone@elsewhere.example"


def externals(n: int, start: int = 0) -> list[str]:
    return [f"r{i}@elsewhere.example" for i in range(start, start + n)]


def test_inbound_mail_is_answered_dunno_at_once(running_server, connect, tenant):
    server = running_server(trusted_networks=())
    client = connect(server)
    assert client.rcpt(OUTSIDE, ALICE, instance="in1", client_address="203.0.113.9") == DUNNO
    assert server.server.metrics.answers["dunno"] == 1


def test_a_restricted_sender_is_refused_at_rcpt_and_others_are_not(running_server, connect, redis_client):
    redis_client.set(state.restriction_key("default", ALICE), state.key_value(None, "Manual", None))
    server = running_server()
    client = connect(server)
    # Several requests on one keep-alive connection, answered in order.
    assert client.rcpt(ALICE, OUTSIDE, instance="a1") == REJECT
    assert client.rcpt(BOB, OUTSIDE, instance="b1") == DUNNO
    assert client.rcpt(ALICE.upper(), OUTSIDE, instance="a2") == REJECT
    # A SASL login that is an address is the sender, whatever the envelope says.
    assert (
        client.rcpt(
            "other@x.example", OUTSIDE, instance="a3", sasl_username=ALICE, client_address="198.51.100.7"
        )
        == REJECT
    )
    assert (
        client.rcpt(BOB, OUTSIDE, instance="b2", sasl_username="bob-login", client_address="198.51.100.7")
        == DUNNO
    )


def test_a_sasl_login_maps_to_its_mailbox_through_the_table(running_server, connect, redis_client, settings):
    settings.ENFORCEMENT_SASL_LOGINS = f"alice01={ALICE}"
    redis_client.set(state.restriction_key("default", ALICE), state.key_value(None, "Manual", None))
    client = connect(running_server(trusted_networks=()))
    assert (
        client.rcpt("", OUTSIDE, instance="s1", sasl_username="alice01", client_address="198.51.100.7")
        == REJECT
    )


def test_pipelined_requests_are_answered_in_order(running_server, connect, redis_client):
    redis_client.set(state.restriction_key("default", ALICE), state.key_value(None, "Manual", None))
    client = connect(running_server())
    blob = b""
    for i in range(50):
        sender = ALICE if i % 2 else BOB
        request = f"protocol_state=RCPT\nclient_address=127.0.0.1\nsender={sender}\nrecipient=x@y.example\n\n"
        blob += request.encode()
    client.send_raw(blob)
    answers = [client.read_answer() for _ in range(50)]
    assert answers == [REJECT if i % 2 else DUNNO for i in range(50)]


def test_many_concurrent_connections_each_get_their_own_answers(running_server, redis_client):
    redis_client.set(state.restriction_key("default", ALICE), state.key_value(None, "Manual", None))
    server = running_server()
    failures: list[str] = []

    def talk(n: int) -> None:
        client = PolicyClient(server.port)
        try:
            for i in range(40):
                sender = ALICE if (n + i) % 3 == 0 else BOB
                got = client.rcpt(sender, OUTSIDE, instance=f"c{n}-{i}")
                if got != (REJECT if sender == ALICE else DUNNO):
                    failures.append(f"{n}/{i}: {got}")
        finally:
            client.close()

    threads = [threading.Thread(target=talk, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert server.server.metrics.requests == 32 * 40
    assert wait_for(
        lambda: server.server.metrics.connections_open == 0, timeout=5, message="connections closed"
    )


@pytest.mark.parametrize(
    "payload",
    [
        b"this is not a policy request\n\n",
        b"\n",
        b"sender=" + b"x" * 20_000 + b"\n\n",
        b"".join(b"a%d=%s\n" % (i, b"v" * 4000) for i in range(20)) + b"\n",
        b"\x00\xff\xfe=\x01\n\n",
    ],
    ids=["no-equals", "empty", "overlong-line", "oversized-request", "binary"],
)
def test_bad_input_gets_dunno_and_the_connection_keeps_working(
    running_server, connect, redis_client, payload
):
    redis_client.set(state.restriction_key("default", ALICE), state.key_value(None, "Manual", None))
    server = running_server()
    client = connect(server)
    client.send_raw(payload)
    assert client.read_answer() == DUNNO
    assert client.rcpt(ALICE, OUTSIDE, instance="after") == REJECT
    assert server.server.metrics.errors["malformed"] >= 1


def test_unknown_attributes_and_protocol_states_are_harmless(running_server, connect):
    client = connect(running_server())
    assert client.ask(protocol_state="DATA", client_address="127.0.0.1", sender=BOB, brand_new="1") == DUNNO
    assert client.rcpt(BOB, OUTSIDE, instance="u1", future_attribute="x" * 100) == DUNNO


def test_a_disconnect_mid_request_leaves_the_server_serving(running_server, connect):
    server = running_server()
    raw = socket.create_connection(("127.0.0.1", server.port))
    raw.sendall(b"protocol_state=RCPT\nsender=" + b"y" * 50_000)
    raw.close()
    assert wait_for(
        lambda: server.server.metrics.errors.get("disconnect_mid_request"),
        timeout=5,
        message="disconnect seen",
    )
    assert connect(server).rcpt(BOB, OUTSIDE, instance="d1") == DUNNO


def test_redis_unreachable_means_dunno_and_the_server_stays_up(running_server, connect, sending_policy):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    server = running_server(redis_url=f"redis://127.0.0.1:{dead}/0")
    client = connect(server)
    assert client.rcpt(ALICE, OUTSIDE, instance="r1") == DUNNO
    assert client.end_of_message(ALICE, instance="r1", recipient_count=1) == DUNNO
    assert client.rcpt(ALICE, OUTSIDE, instance="r2") == DUNNO
    assert server.server.metrics.errors["redis"] == 3


def test_a_restart_rebuilds_the_restriction_keys_from_the_database(
    running_server, connect, redis_client, make_mailbox
):
    from django.utils import timezone

    from restricted_users.services import next_utc_midnight, restrict_user

    restrict_user(
        make_mailbox(ALICE),
        policy_name="Manual restriction",
        reason={"text": "test"},
        expires_at=next_utc_midnight(timezone.now()),
        source="manual",
        actor_label="test",
    )
    redis_client.flushdb()  # Redis lost its data (a restart without persistence)
    server = running_server()
    assert connect(server).rcpt(ALICE, OUTSIDE, instance="x1") == REJECT
    assert redis_client.ttl(state.restriction_key("default", ALICE)) > 0


def test_the_limit_holds_at_its_boundary_then_restricts(
    running_server, connect, make_mailbox, sending_policy, redis_client
):
    from alerts.models import Alert
    from mailflow.models import MessageEvent

    alice = make_mailbox(ALICE)
    server = running_server()
    client = connect(server)
    for i in range(5):  # exactly the limit (5 external recipients in the hour) is allowed
        assert client.send_message(ALICE, externals(1, i)) == DUNNO
    # Internal recipients count in their own window: 5 more are fine.
    assert client.send_message(ALICE, [f"colleague{i}@{DOMAIN}" for i in range(5)]) == DUNNO
    assert client.send_message(ALICE, externals(1, 100)) == REJECT  # the 6th external recipient
    assert client.rcpt(ALICE, OUTSIDE, instance="next") == REJECT  # the key is set at once
    restriction = wait_for(
        lambda: Restriction.objects.active().filter(mailbox=alice).first(), message="the database restriction"
    )
    assert restriction.source == Restriction.Source.POLICY_SERVICE
    assert restriction.policy_name == sending_policy.name
    assert restriction.reason["limit"] == "external_per_hour" and restriction.reason["count"] == 6
    assert restriction.expires_at is not None
    assert wait_for(lambda: Alert.objects.filter(mailbox=alice, restriction=restriction).exists())
    assert (
        state.read_restriction("default", ALICE)["id"] == restriction.pk
    )  # the row replaced the provisional key
    # The accepted messages became message events, off the hot path.
    assert wait_for(
        lambda: MessageEvent.objects.filter(sender=alice).count() == 6, message="6 message events"
    )
    assert MessageEvent.objects.filter(event_id__startswith="postfix:inst").count() == 6
    assert server.server.metrics.restrictions_placed == 1


def test_a_release_is_honoured_on_the_next_request_and_counts_restart(
    running_server, connect, make_mailbox, sending_policy, administrator
):
    from restricted_users.services import release_user

    alice = make_mailbox(ALICE)
    server = running_server()
    client = connect(server)
    for i in range(5):
        assert client.send_message(ALICE, externals(1, i)) == DUNNO
    assert client.send_message(ALICE, externals(1, 5)) == REJECT
    restriction = wait_for(lambda: Restriction.objects.active().filter(mailbox=alice).first())
    release_user(restriction, actor=administrator, reason="password reset", attestations=ALL_ATTESTED)
    # The snapshot (refreshed every minute) has not seen the release yet; the next request honours it anyway.
    assert client.send_message(ALICE, externals(1, 10)) == DUNNO
    for i in range(4):  # counts restarted from zero at the release: 5 more in the hour are fine
        assert client.send_message(ALICE, externals(1, 20 + i)) == DUNNO
    # Over again the same day: the sending-limit policy re-restricts after a release by default (issue 14).
    assert client.send_message(ALICE, externals(1, 30)) == REJECT
    again = wait_for(lambda: Restriction.objects.active().filter(mailbox=alice).first())
    assert again.pk != restriction.pk


def test_a_policy_set_not_to_re_restrict_after_a_release_lets_mail_flow_the_same_day(
    running_server, connect, make_mailbox, sending_policy, administrator
):
    from alerts.services import update_policy
    from restricted_users.services import release_user

    update_policy(sending_policy, actor=administrator, rerestrict_after_release=False)
    alice = make_mailbox(ALICE)
    client = connect(running_server())
    for i in range(6):
        client.send_message(ALICE, externals(1, i))
    release_user(
        wait_for(lambda: Restriction.objects.active().filter(mailbox=alice).first()),
        actor=administrator,
        reason="checked",
        attestations=ALL_ATTESTED,
    )
    for i in range(5):
        assert client.send_message(ALICE, externals(1, 10 + i)) == DUNNO
    assert client.send_message(ALICE, externals(1, 20)) == DUNNO  # over again, but released today
    assert Restriction.objects.active().filter(mailbox=alice).count() == 0


def test_an_override_and_the_scope_change_who_is_limited(
    running_server, connect, make_mailbox, sending_policy, administrator
):
    from alerts.services import set_policy_override, update_policy

    make_mailbox(ALICE)
    make_mailbox(BOB)
    set_policy_override(
        sending_policy, actor=administrator, mailbox_address=ALICE, thresholds={"external_per_hour": 50}
    )
    update_policy(sending_policy, actor=administrator, exclude_mailboxes=[BOB])
    client = connect(running_server())
    assert client.send_message(ALICE, externals(10)) == DUNNO
    assert client.send_message(BOB, externals(10)) == DUNNO
    assert client.send_message(ALICE, externals(41, 10)) == REJECT


def test_recipients_postfix_counted_but_we_did_not_see_count_as_external(
    running_server, connect, make_mailbox, sending_policy
):
    make_mailbox(ALICE)
    client = connect(running_server())
    assert client.end_of_message(ALICE, instance="unseen", recipient_count=6) == REJECT


def test_the_metrics_endpoint_counts_answers(running_server, connect, redis_client):
    redis_client.set(state.restriction_key("default", ALICE), state.key_value(None, "Manual", None))
    server = running_server(metrics=True)
    client = connect(server)
    client.rcpt(ALICE, OUTSIDE, instance="m1")
    client.rcpt(BOB, OUTSIDE, instance="m2")
    client.send_raw(b"junk\n\n")
    client.read_answer()
    body = urllib.request.urlopen(f"http://127.0.0.1:{server.server.metrics_port}/metrics", timeout=5).read()
    text = body.decode()
    assert 'soc_policy_answers_total{action="reject"} 1' in text
    assert 'soc_policy_answers_total{action="dunno"} 2' in text
    assert 'soc_policy_errors_total{reason="malformed"} 1' in text
    assert "soc_policy_requests_total 3" in text


def test_a_sub_address_is_refused_like_its_restricted_mailbox(
    running_server, connect, redis_client, settings
):
    """Issue 15, row 13: ``alice+x@`` is the mailbox ``alice@``, as sender, SASL login or mapped login."""
    settings.ENFORCEMENT_SASL_LOGINS = f"alice02=alice+tag@{DOMAIN}"
    redis_client.set(state.restriction_key("default", ALICE), state.key_value(None, "Manual", None))
    client = connect(running_server())
    assert client.rcpt(f"alice+x@{DOMAIN}", OUTSIDE, instance="p1") == REJECT
    assert client.rcpt(f"ALICE+news+2@{DOMAIN}", OUTSIDE, instance="p2") == REJECT
    assert (
        client.rcpt(
            "", OUTSIDE, instance="p3", sasl_username=f"alice+y@{DOMAIN}", client_address="198.51.100.7"
        )
        == REJECT
    )
    assert (
        client.rcpt("", OUTSIDE, instance="p4", sasl_username="alice02", client_address="198.51.100.7")
        == REJECT
    )
    assert client.rcpt(f"bob+x@{DOMAIN}", OUTSIDE, instance="p5") == DUNNO


def test_sub_addressing_follows_the_recipient_delimiter_setting(
    running_server, connect, redis_client, settings
):
    settings.RECIPIENT_DELIMITER = "-"
    redis_client.set(state.restriction_key("default", ALICE), state.key_value(None, "Manual", None))
    client = connect(running_server())
    assert client.rcpt(f"alice-x@{DOMAIN}", OUTSIDE, instance="d1") == REJECT
    assert client.rcpt(f"alice+x@{DOMAIN}", OUTSIDE, instance="d2") == DUNNO
