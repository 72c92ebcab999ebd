from datetime import datetime

from core.queueing import domain_task

from . import services


@domain_task("alerts.evaluate")
def evaluate(tenant_id: int, mailbox_ids: list[int], start: str, end: str, attempt: int = 0) -> None:
    """Run the detectors for the users one ingested batch touched (one task per batch, never per event).

    A detector failing for one mailbox does not stop the others: the service records it and enqueues this task
    again for the failed mailboxes alone (``attempt`` + 1, with backoff)."""
    services.evaluate_mailboxes(
        tenant_id, mailbox_ids, datetime.fromisoformat(start), datetime.fromisoformat(end), attempt=attempt
    )


@domain_task("alerts.restriction_placed")
def restriction_placed(restriction_id: int) -> None:
    """Raise or fold "User restricted from sending email" for a new restriction."""
    services.raise_restriction_alert(restriction_id)


@domain_task("alerts.restriction_released")
def restriction_released(
    restriction_id: int, resolve: bool, reason: str, actor_id: int | None = None
) -> None:
    """Resolve (or annotate, when the administrator kept them open) the released user's "User restricted"
    alerts."""
    services.resolve_restriction_alerts(restriction_id, resolve=resolve, reason=reason, actor_id=actor_id)
