"""Services behind beat: disabled-account keys rebuilt from the directory, the Sieve schedule, a Sieve read
with doveadm down, the events queue drained in batches."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from mailstack import state
from mailstack.doveadm import Unreachable
from mailstack.models import MailstackConnection
from mailstack.services import drain_events, read_sieve, sieve_read_due, sync_disabled_keys

pytestmark = pytest.mark.django_db


def test_the_disabled_keys_follow_the_directory(connected, tenant, mailboxes, mail_redis):
    mail_redis.set(state.disabled_key(tenant.slug, "bob@example.test"), "1")  # re-enabled since
    mailboxes["ann"].account_enabled = False
    mailboxes["ann"].save()
    assert sync_disabled_keys(tenant) == 1
    assert mail_redis.exists(state.disabled_key(tenant.slug, "ann@example.test"))
    assert not mail_redis.exists(state.disabled_key(tenant.slug, "bob@example.test"))


def test_sieve_is_read_when_the_interval_has_passed(connected, settings):
    settings.MAILSTACK_SIEVE_READ_SECONDS = 300
    assert sieve_read_due(connected)
    connected.sieve_read_at = timezone.now() - timedelta(seconds=100)
    assert not sieve_read_due(connected)
    connected.sieve_read_at = timezone.now() - timedelta(seconds=301)
    assert sieve_read_due(connected)


def test_a_sieve_read_with_doveadm_down_records_the_error(connected, mail_redis):
    MailstackConnection.objects.filter(pk=connected.pk).update(doveadm_url="http://127.0.0.1:9/doveadm/v1")
    connected.refresh_from_db()
    with pytest.raises(Unreachable):
        read_sieve(connected)
    connected.refresh_from_db()
    assert "connection refused" in connected.sieve_error
    assert "connection refused" in state.read_status(connected.tenant.slug)["sieve"]["error"]


def test_the_queue_is_stored_in_batches_and_bad_entries_are_counted(
    connected, tenant, mail_redis, monkeypatch
):
    from mailstack import services

    monkeypatch.setattr(services, "DRAIN_BATCH", 3)
    for i in range(7):
        state.queue_event(
            tenant.slug,
            {
                "type": "sign_in",
                "id": f"dovecot:{i}",
                "time": "2026-12-03T09:00:00+00:00",
                "user": "ann@example.test",
                "ip": "81.2.69.142",
            },
            source="dovecot",
        )
    mail_redis.rpush(state.events_key(tenant.slug), b"not json")
    mail_redis.rpush(
        state.events_key(tenant.slug),
        b'{"type":"sign_in","id":"x","time":"2026-12-03T09:00:00+00:00","user":"eve@outside.example","ip":"1.2.3.4"}',
    )
    result = drain_events(tenant.pk)
    assert (result.accepted, result.rejected) == (7, 2)
    assert mail_redis.llen(state.events_key(tenant.slug)) == 0


def test_sieve_changes_are_stored_once_and_a_return_to_an_earlier_script_is_a_new_change(
    connected, tenant, mail_redis, monkeypatch
):
    """The undo of "turn off forwarding" puts back the very script that was read before: that is a change
    again, stored, not a conflict with the first read's events."""
    from mailboxes.models import MailboxForwarding
    from mailstack import services

    scripts = {"ann@example.test": ("rules", 'redirect "x@elsewhere.test";\n')}
    monkeypatch.setattr(services, "read_active_scripts", lambda client, addresses: dict(scripts))
    assert read_sieve(connected, addresses=["ann@example.test"]).accepted == 1
    assert read_sieve(connected, addresses=["ann@example.test"]).accepted == 0
    scripts["ann@example.test"] = ("rules", "keep;\n")
    assert read_sieve(connected, addresses=["ann@example.test"]).accepted == 1
    assert MailboxForwarding.objects.get(mailbox__address="ann@example.test").forward_to is None
    scripts["ann@example.test"] = ("rules", 'redirect "x@elsewhere.test";\n')
    result = read_sieve(connected, addresses=["ann@example.test"])
    assert (result.accepted, result.conflicts) == (1, [])
    assert MailboxForwarding.objects.get(mailbox__address="ann@example.test").forward_to == "x@elsewhere.test"


def test_a_batch_the_database_refused_goes_back_to_the_queue_in_order(
    connected, tenant, mail_redis, monkeypatch
):
    from django.db import OperationalError

    from mailstack import services

    for i in range(3):
        state.queue_event(tenant.slug, {"type": "sign_in", "id": f"dovecot:{i}"}, source="dovecot")

    def down(*args, **kwargs):
        raise OperationalError("the database is down")

    monkeypatch.setattr(services, "ingest_events", down)
    with pytest.raises(OperationalError):
        drain_events(tenant.pk)
    waiting = mail_redis.lrange(state.events_key(tenant.slug), 0, -1)
    assert [f'"dovecot:{i}"' in item for i, item in enumerate(waiting)] == [True, True, True]
