"""Thin Celery wrappers over :mod:`notifications.services` (queue ``notify``; beat on ``beat``)."""

from celery import shared_task
from django.db import OperationalError

from . import services


@shared_task(
    name="notifications.dispatch",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def dispatch() -> None:
    """Turn pending outbox messages into deliveries and mails (claimed with SKIP LOCKED: idempotent)."""
    services.dispatch_outbox()


@shared_task(name="notifications.deliver_webhook", acks_late=True)
def deliver_webhook(delivery_id: int) -> None:
    """Send one webhook delivery; a redelivered message finds it claimed or done and returns."""
    services.deliver_webhook(delivery_id)


@shared_task(name="notifications.send_email", acks_late=True)
def send_email(notification_id: int) -> None:
    """Send one notification mail; a redelivered message finds it claimed or sent and returns."""
    services.send_email(notification_id)


@shared_task(name="notifications.beat_retry", ignore_result=True)
def beat_retry() -> None:
    """Periodic: re-send due retries, return lapsed claims, dispatch outbox rows left behind."""
    services.retry_due()


@shared_task(name="notifications.beat_waiting_actions", ignore_result=True)
def beat_waiting_actions() -> None:
    """Periodic: announce, once each, remediation actions waiting for approval past the threshold."""
    services.announce_waiting_actions()
