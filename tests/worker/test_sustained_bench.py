"""The sustained-load benchmark's machinery at a tiny size (``bench/sustained_bench.py``): a real gunicorn, a
real Celery worker and a few seconds of a simulated tenant's traffic POSTed at a low fixed rate, with attacks
in it; every attack must be alerted and its detection lag measured from its batch's commit."""

from pathlib import Path

import pytest

from bench.sustained_bench import (
    LAG_GOAL_SECONDS,
    LoadGenerator,
    Plan,
    TenantTraffic,
    prepare_tenant,
    simulated_roster,
    web_server,
    worker_pool,
)
from mailboxes.models import Mailbox
from restricted_users.models import Restriction
from tests.conftest import worker_database_url

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_short_step_measures_the_detection_lag_of_every_attack_it_carried(tmp_path: Path) -> None:
    from soc_console.celery import app

    app.conf.task_always_eager = False  # the roster's evaluations go to the broker, purged at worker start
    plan = Plan(mailboxes=200, web_processes=1, senders=2, grace_seconds=30)
    simulation = simulated_roster(plan)
    tenant, token = prepare_tenant(simulation)
    url = worker_database_url()
    with web_server(url, tmp_path / "web.log", processes=1) as base_url, worker_pool(url, 1, tmp_path):
        traffic = TenantTraffic(simulation, attack_seconds=2, session=1)
        step = LoadGenerator(base_url, token, traffic, tenant.pk, plan).run_step(rate=30, seconds=6)

    assert step.failed_batches == 0
    assert step.offered >= 6 * 30 and step.accepted == step.offered
    # attacks every 2 s; a phishing burst's threshold-crossing part is in its third batch
    assert step.attacks >= 2 and step.missing == 0
    assert len(step.lags) == step.attacks
    assert all(0 < lag < plan.grace_seconds for lag in step.lags), step.lags
    assert step.backlog, "the backlog was sampled"
    assert step.other_alerts == 0, "benign users at a plausible pace raise nothing"
    assert step.passed == (step.p95 <= LAG_GOAL_SECONDS)
    phished = [a for a in traffic.attacks if a.policy_kind == "sending_limit" and a.trigger_batch >= 0]
    assert Restriction.objects.filter(mailbox__address=phished[0].address).exists()
    benign = Mailbox.objects.filter(address__in=[m.address for m in simulation.mailboxes])
    assert not Restriction.objects.filter(mailbox__in=benign).exists()
