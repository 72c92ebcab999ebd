"""Celery tasks of the Microsoft 365 connector (queue ``pull``; beat fans out every minute)."""

from __future__ import annotations

from core.queueing import domain_task, fan_out

from .models import M365Connection
from .pull import pull_connection, pull_source


@domain_task("m365.beat_pull")
def beat_pull() -> int:
    """Enqueue a pull of every enabled connection; each pulls only its sources that are due."""
    return fan_out(pull, list(M365Connection.objects.enabled().values_list("pk", flat=True)))


@domain_task("m365.pull")
def pull(connection_id: int, source: str = "", force: bool = False) -> None:
    """Pull one source (or every due source) of a connection; a disabled or deleted one is skipped. The
    cursor leases make a duplicate delivery a no-op."""
    connection = M365Connection.objects.enabled_one(connection_id)
    if connection is None:
        return
    if source:
        pull_source(connection, source)
    else:
        pull_connection(connection, force=force)
