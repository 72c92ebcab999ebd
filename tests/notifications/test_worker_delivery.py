"""Through a real Celery worker: a committed change reaches the webhook receiver and the SMTP server."""

from __future__ import annotations

import statistics
import time

import pytest
from django.db import transaction

from tests.alerts.alert_builders import make_alert, make_mailbox
from tests.conftest import wait_for

from .conftest import WORKER_SMTP_PORT, start_smtp

ROUNDS = 5


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_committed_change_reaches_the_webhook_and_the_mail_server_within_seconds(
    tenant, receiver, endpoint_for, quiet_policy, real_worker
):
    sink, controller = start_smtp(WORKER_SMTP_PORT)  # the worker's EMAIL_HOST / EMAIL_PORT (conftest)
    try:
        endpoint_for(tenant, receiver.url, event_kinds=["alert.raised"])
        quiet_policy(tenant, notify_recipients=["soc@example.com"])
        webhook_delays, mail_delays = [], []
        for n in range(ROUNDS):
            mailbox = make_mailbox(tenant, f"user{n}@example.com")
            stamps: list[float] = []
            with transaction.atomic():
                # The first hook registered runs first: it stamps the commit, before the dispatch is enqueued.
                transaction.on_commit(lambda stamps=stamps: stamps.append(time.monotonic()))
                make_alert(tenant, mailbox)
            wait_for(lambda n=n: len(receiver.requests) > n, timeout=30, message="the webhook")
            wait_for(lambda n=n: len(sink.mails) > n, timeout=30, message="the mail")
            webhook_delays.append(receiver.requests[n].at - stamps[0])
            mail_delays.append(sink.mails[n].at - stamps[0])
            assert receiver.requests[n].json()["data"]["user"] == f"user{n}@example.com"
    finally:
        controller.stop()

    def ms(values: list[float]) -> str:
        return (
            f"median {statistics.median(values) * 1000:.0f} ms, "
            f"min {min(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms"
        )

    print(f"\ncommit -> webhook received ({ROUNDS} changes): {ms(webhook_delays)}")
    print(f"commit -> mail received ({ROUNDS} changes): {ms(mail_delays)}")
    assert max(webhook_delays) < 5
    assert max(mail_delays) < 5
    assert len(receiver.requests) == ROUNDS  # nothing sent twice
    assert len(sink.mails) == ROUNDS
