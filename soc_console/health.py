"""/healthz: the database and, outside embedded mode, the broker reachable and beat seen recently; and how
detection fares (evaluation failures of the last hour, the last one, the total), which is reported, not fatal:
the other mailboxes of a batch are still evaluated and the failed ones retried."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from alerts.models import EvaluationFailure
from core.models import Heartbeat

from .celery import app


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure is reported, never raised
        return f"error: {exc.__class__.__name__}"


def _check_broker() -> str:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:  # noqa: BLE001
        return f"error: {exc.__class__.__name__}"


def _check_beat() -> dict:
    heartbeat = Heartbeat.objects.filter(name="beat").first() if connection.is_usable() else None
    if heartbeat is None:
        return {"status": "error: never seen", "last_seen": None}
    age = timezone.now() - heartbeat.last_seen
    ok = age <= timedelta(seconds=settings.BEAT_STALE_AFTER_SECONDS)
    return {"status": "ok" if ok else "error: stale", "last_seen": heartbeat.last_seen.isoformat()}


def _check_detection() -> dict:
    """Evaluation failures (a detector that raised for one mailbox): a counter and the last hour's."""
    failures = EvaluationFailure.objects.all()
    last = failures.order_by("-failed_at", "-id").first()
    recent = failures.since(timezone.now() - timedelta(hours=1))
    return {
        "status": "failing" if recent.exists() else "ok",
        "failures_last_hour": recent.count(),
        "failures_given_up_last_hour": recent.filter(final=True).count(),
        "failures_total": failures.count(),
        "last_failure_at": last.failed_at.isoformat() if last else None,
        "last_failure": f"{last.detector} for {last.mailbox_address}: {last.error[:200]}" if last else None,
    }


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    database = _check_database()
    body: dict = {"mode": "embedded" if settings.EMBEDDED else "production", "database": database}
    healthy = database == "ok"
    if settings.EMBEDDED or settings.CELERY_TASK_ALWAYS_EAGER:
        body["tasks"] = "in-process"
    else:
        body["broker"] = _check_broker()
        body["beat"] = _check_beat() if database == "ok" else {"status": "unknown", "last_seen": None}
        healthy = healthy and body["broker"] == "ok" and body["beat"]["status"] == "ok"
    if database == "ok":
        body["detection"] = _check_detection()
    body["status"] = "ok" if healthy else "error"
    return JsonResponse(body, status=200 if healthy else 503)
