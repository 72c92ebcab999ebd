"""Thin Celery wrappers over :mod:`notifications.services` (queue ``notify``; beat on ``beat``)."""

from core.queueing import domain_task

from . import services


@domain_task("notifications.dispatch")
def dispatch() -> None:
    """Turn pending outbox messages into deliveries and mails (claimed with SKIP LOCKED: idempotent)."""
    services.dispatch_outbox()


@domain_task("notifications.deliver_webhook")
def deliver_webhook(delivery_id: int) -> None:
    """Send one webhook delivery; a redelivered message finds it claimed or done and returns."""
    services.deliver_webhook(delivery_id)


@domain_task("notifications.send_email")
def send_email(notification_id: int) -> None:
    """Send one notification mail; a redelivered message finds it claimed or sent and returns."""
    services.send_email(notification_id)


@domain_task("notifications.beat_retry")
def beat_retry() -> None:
    """Periodic: re-send due retries, return lapsed claims, dispatch outbox rows left behind."""
    services.retry_due()


@domain_task("notifications.beat_waiting_actions")
def beat_waiting_actions() -> None:
    """Periodic: announce, once each, remediation actions waiting for approval past the threshold."""
    services.announce_waiting_actions()
