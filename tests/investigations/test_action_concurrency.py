"""Concurrency on PostgreSQL: two approvals (or two deliveries) of one action execute it once, and an action
whose worker died mid-way is completed once after the reaper returns it — in-process, and with a real Celery
worker killed while it holds the action."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from investigations import actions
from investigations.exceptions import ActionError
from investigations.models import RemediationAction
from mailboxes.models import DirectoryChange, MailboxForwarding
from tests.builders.threads import run_together
from tests.conftest import wait_for

from .action_builders import (
    EVIL,
    Status,
    Type,
    approve_now,
    forward,
    forwarding_investigation,
    make_action,
    make_investigation,
    make_mailbox,
)
from .fake_connectors import CountingConnector

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def counting(settings):
    settings.CONNECTOR_KINDS = {"builtin": "tests.investigations.fake_connectors.CountingConnector"}
    CountingConnector.reset()
    return CountingConnector


@pytest.fixture
def forwarding_action(tenant):
    investigation = forwarding_investigation(tenant)
    return make_action(investigation, Type.TURN_OFF_FORWARDING, label=f"Forwarding to {EVIL}")


def _cleared_by_investigation(mailbox) -> int:
    return DirectoryChange.objects.filter(
        mailbox=mailbox, source="investigation", kind="forwarding", operation="cleared"
    ).count()


def assert_carried_out_once(action, counting, *, attempts: int) -> None:
    """The action completed after ``attempts`` claims, its change applied (and mirrored) exactly once."""
    action.refresh_from_db()
    assert action.status == Status.COMPLETED
    assert action.attempts == attempts
    assert counting.applies == 1
    assert _cleared_by_investigation(action.investigation.mailbox) == 1


def test_two_operators_approving_at_once_execute_the_action_once(
    forwarding_action, operator, administrator, counting
):
    """Each approval commits, then runs ``execute_action`` in-process; only one of them decides it."""

    def approve(user):
        return lambda: actions.decide_actions(forwarding_action, actor=user, approve=True, comment="go")

    results, errors = run_together(approve(operator), approve(administrator))
    assert len(results) == 1
    assert len(errors) == 1 and isinstance(errors[0], ActionError)
    assert "already" in str(errors[0])
    assert_carried_out_once(forwarding_action, counting, attempts=1)


def test_two_deliveries_of_one_approved_action_execute_it_once(forwarding_action, operator, counting):
    approve_now(forwarding_action, operator)
    results, errors = run_together(
        lambda: actions.run_approved_action(forwarding_action.pk),
        lambda: actions.run_approved_action(forwarding_action.pk),
    )
    assert errors == []
    assert sorted(results, key=str) == [None, Status.COMPLETED]  # one claimed it, the other found nothing
    assert counting.applies == 1
    assert RemediationAction.objects.get(pk=forwarding_action.pk).attempts == 1


def test_an_action_whose_worker_died_after_claiming_completes_once_after_the_reaper(
    forwarding_action, operator, counting
):
    approve_now(forwarding_action, operator)
    # A worker claims it (the committed conditional update) and dies before doing anything else.
    claimed_at = timezone.now()
    claimed = RemediationAction.objects.filter(pk=forwarding_action.pk, status=Status.APPROVED).update(
        status=Status.RUNNING, running_since=claimed_at, attempts=1
    )
    assert claimed == 1
    # Redelivery before the lease ends finds it claimed; the reaper leaves a live lease alone.
    assert actions.run_approved_action(forwarding_action.pk) is None
    assert actions.reap_expired_leases(now=claimed_at + actions.lease() - timedelta(seconds=1)) == 0
    # Past the lease, the reaper returns it to Approved and enqueues it (in-process here): completed once.
    assert actions.reap_expired_leases(now=claimed_at + actions.lease() + timedelta(seconds=1)) == 1
    assert_carried_out_once(forwarding_action, counting, attempts=2)


def test_the_reaper_fails_an_action_whose_workers_keep_dying(forwarding_action, operator, settings):
    approve_now(forwarding_action, operator)
    claimed_at = timezone.now() - actions.lease() - timedelta(minutes=1)
    RemediationAction.objects.filter(pk=forwarding_action.pk).update(
        status=Status.RUNNING, running_since=claimed_at, attempts=settings.ACTION_MAX_ATTEMPTS
    )
    assert actions.reap_expired_leases() == 1
    forwarding_action.refresh_from_db()
    assert forwarding_action.status == Status.FAILED
    assert "worker stopped during each of 5 attempts" in forwarding_action.result


# ------------------------------------------------------------------------------------------------ real worker


def _start_slow_worker(queue: str, marker: Path, log: Path) -> subprocess.Popen:
    """A Celery worker on its own queue whose built-in connector hangs after making its change."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.investigations.slow_worker_settings",
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        ),
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "SLOW_CONNECTOR_MARKER": str(marker),
    }
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "soc_console",
        "worker",
        "--pool=solo",
        "-l",
        "info",
        "-Q",
        queue,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        f"{queue}@%h",
    ]
    with log.open("w") as log_file:
        process = subprocess.Popen(  # noqa: S603 - our own worker, fixed arguments
            command, cwd=django_settings.BASE_DIR, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    wait_for(
        lambda: "ready" in log.read_text() or process.poll() is not None,
        timeout=30,
        message="the slow worker",
    )
    if process.poll() is not None:
        pytest.fail(f"The slow worker did not start:\n{log.read_text()[-3000:]}")
    return process


@pytest.mark.worker
def test_a_worker_killed_mid_action_leaves_nothing_and_the_action_completes_once_after_the_reaper(
    forwarding_action, operator, real_worker, tmp_path
):
    from soc_console.celery import app

    queue = f"act-kill-test-{os.getpid()}"
    marker = tmp_path / "inside-apply"
    log = Path(django_settings.BASE_DIR, "var", f"test-slow-worker-{os.getpid()}.log")
    mailbox = forwarding_action.investigation.mailbox
    worker = _start_slow_worker(queue, marker, log)
    try:
        approve_now(forwarding_action, operator)
        app.signature(actions.EXECUTE_TASK, args=(forwarding_action.pk,)).apply_async(queue=queue)
        # The worker claimed the action and turned forwarding off inside its transaction, then hangs.
        wait_for(marker.exists, timeout=30, message="the slow worker to be inside apply")
        assert RemediationAction.objects.get(pk=forwarding_action.pk).status == Status.RUNNING
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(queue)
    # Its transaction died with it: forwarding is still on, the lease still held.
    assert MailboxForwarding.objects.get(mailbox=mailbox).forward_to == EVIL
    assert _cleared_by_investigation(mailbox) == 0
    assert actions.reap_expired_leases() == 0
    # Past the lease the reaper returns it to Approved and enqueues it: the project's worker completes it.
    # (PostgreSQL releases the dead worker's row locks once it sees the connection closed: poll for it.)
    later = timezone.now() + actions.lease() + timedelta(seconds=1)
    wait_for(lambda: actions.reap_expired_leases(now=later) == 1, message="the reaper to return the action")
    wait_for(
        lambda: RemediationAction.objects.get(pk=forwarding_action.pk).status == Status.COMPLETED,
        message="the action to complete in the worker",
    )
    forwarding_action.refresh_from_db()
    assert forwarding_action.attempts == 2
    assert MailboxForwarding.objects.get(mailbox=mailbox).forward_to is None
    assert _cleared_by_investigation(mailbox) == 1
    log.unlink(missing_ok=True)


@pytest.mark.worker
def test_an_approved_action_is_executed_end_to_end_by_the_real_worker(tenant, operator, real_worker):
    mailbox = make_mailbox(tenant)
    forward(mailbox)
    investigation = make_investigation(mailbox)
    action = make_action(investigation, Type.TURN_OFF_FORWARDING, label=f"Forwarding to {EVIL}")
    actions.decide_actions(action, actor=operator, approve=True, comment="Confirmed with the user")
    wait_for(
        lambda: RemediationAction.objects.get(pk=action.pk).status == Status.COMPLETED,
        message="the worker to complete the action",
    )
    action.refresh_from_db()
    investigation.refresh_from_db()
    assert "applied in the console; no mail platform connected" in action.result
    assert MailboxForwarding.objects.get(mailbox=mailbox).forward_to is None
    assert investigation.status == "remediated"
