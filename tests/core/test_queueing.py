"""One way to enqueue on commit and one retry policy for every domain task (core.queueing)."""

from __future__ import annotations

import pytest
from celery import current_app
from celery.canvas import Signature
from django.db import OperationalError, transaction

from core.queueing import RETRY_POLICY, enqueue_on_commit, fan_out
from mailstack.models import MailstackConnection

DOMAIN_APPS = (
    "core.",
    "alerts.",
    "restricted_users.",
    "investigations.",
    "incidents.",
    "notifications.",
    "enforcement.",
    "m365.",
    "mailstack.",
)


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, tuple, dict]]:
    calls: list[tuple[str, tuple, dict]] = []
    monkeypatch.setattr(
        Signature, "apply_async", lambda self, *a, **k: calls.append((self.task, self.args, self.options))
    )
    return calls


@pytest.mark.django_db
def test_a_task_is_sent_by_name_only_once_the_transaction_commits(sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        enqueue_on_commit("alerts.restriction_placed", 7)
        enqueue_on_commit("investigations.undo_action", 1, 2, "why", countdown=30)
        assert sent == []
    assert sent == [
        ("alerts.restriction_placed", (7,), {}),
        ("investigations.undo_action", (1, 2, "why"), {"countdown": 30}),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_enqueues_nothing(sent):
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_on_commit("alerts.restriction_placed", 7)
        raise RuntimeError("rolled back")
    assert sent == []


def test_every_domain_task_has_the_one_retry_policy():
    domain = {name: task for name, task in current_app.tasks.items() if name.startswith(DOMAIN_APPS)}
    assert "notifications.deliver_webhook" in domain and "restricted_users.beat_resync_redis" in domain
    for name, task in domain.items():
        assert OperationalError in task.autoretry_for, name
        for option, value in RETRY_POLICY.items():
            assert getattr(task, option) == value, (name, option)


@pytest.mark.django_db
def test_a_beat_fan_out_sends_one_task_per_enabled_connection(tenant, other_tenant, monkeypatch):
    sent: list[int] = []
    task = current_app.tasks["mailstack.read_sieve"]
    monkeypatch.setattr(task, "delay", sent.append)
    url = "http://127.0.0.1:9/doveadm/v1"
    on = MailstackConnection.objects.create(tenant=tenant, doveadm_url=url)
    off = MailstackConnection.objects.create(tenant=other_tenant, doveadm_url=url, enabled=False)
    assert fan_out(task, MailstackConnection.objects.enabled().values_list("pk", flat=True)) == 1
    assert sent == [on.pk]
    assert MailstackConnection.objects.enabled_one(on.pk) == on
    assert MailstackConnection.objects.enabled_one(off.pk) is None
