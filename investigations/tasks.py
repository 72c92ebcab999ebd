"""Celery tasks of the playbook (queue ``investigate``): thin wrappers over the services, each idempotent.

``investigations.start`` opens or correlates (an alert already attached returns its investigation);
``investigations.run`` claims the investigation with a lease, so a second delivery while a run holds it
returns at once, and a delivery after the run finished runs the analyzers again. The action side's tasks live
in ``investigations.action_tasks``.
"""

from __future__ import annotations

import logging

from alerts.models import Alert
from core.queueing import domain_task

from . import playbook, services

logger = logging.getLogger(__name__)


@domain_task("investigations.start")
def start(alert_id: int) -> None:
    """Open an investigation for an alert's user, or correlate the alert into the user's open one."""
    try:
        services.start_investigation_for_alert(alert_id)
    except Alert.DoesNotExist:
        logger.warning("Alert %s no longer exists; no investigation started", alert_id)


@domain_task("investigations.run")
def run(investigation_id: int) -> None:
    """Run the playbook's analyzers over an investigation and conclude its verdict and status."""
    playbook.run_investigation(investigation_id)


@domain_task("investigations.beat_requeue_stalled_runs")
def beat_requeue_stalled_runs() -> None:
    """Periodic: enqueue again the runs a dead worker or an exhausted retry left Running / Queued."""
    playbook.requeue_stalled_runs()
