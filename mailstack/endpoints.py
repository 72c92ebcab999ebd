"""The two endpoints the servers call (DESIGN section 13). Plain Django views (no DRF: they are on the mail
servers' hot path), CSRF-exempt, authenticated by the shared secret each server sends with HTTP Basic auth
(any user name, the secret as password): Rspamd's ``metadata_exporter`` (``user`` / ``password``) and
Dovecot's ``auth_policy_server_api_header = Authorization: Basic …``.

Per request: the connection's secret hashes come from memory (reloaded from the database every
:data:`CONFIG_TTL` seconds), everything else from Redis. Events go to a Redis list and are stored by the
ingest service off the hot path (:func:`mailstack.services.drain_events`).

**Dovecot's policy** (``?command=allow`` before and after authentication, ``?command=report`` after it):
``allow`` answers ``{"status": -1}`` (reject) for an account the console disabled, a positive status (the
seconds Dovecot waits: a tarpit) once the login or the client address has failed
``MAILSTACK_TARPIT_AFTER_FAILURES`` times within ``MAILSTACK_TARPIT_WINDOW_SECONDS``, else ``{"status": 0}``.
``report`` counts a failure (or clears the login's failures on success) and records the sign-in. Any error
of ours answers ``{"status": 0}``: the console never locks users out by failing (Dovecot, too, lets the login
through when the policy server is unreachable, with ``auth_policy_reject_on_fail = no``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass

import redis
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from core.queueing import enqueue

from . import state
from .mapping import BadRequest, Skipped, dovecot_sign_in, rspamd_event

logger = logging.getLogger(__name__)

CONFIG_TTL = 30.0
DRAIN_TASK = "mailstack.ingest_pending"
DRAIN_DELAY_SECONDS = 1
DISABLED_MESSAGE = "Account disabled by the security team."
TARPIT_MESSAGE = "Too many failed sign-ins: slowed down."
ALLOW = b'{"status":0}'


@dataclass(frozen=True)
class EndpointConfig:
    tenant_id: int
    tenant_slug: str
    exporter_secret_hash: str
    policy_secret_hash: str
    enabled: bool


_cache: dict[str, tuple[float, EndpointConfig | None]] = {}
_cache_lock = threading.Lock()


def config_for(tenant_slug: str) -> EndpointConfig | None:
    """The connection of a tenant (None when it has none), from memory when loaded within CONFIG_TTL."""
    now = time.monotonic()
    cached = _cache.get(tenant_slug)
    if cached is not None and cached[0] > now:
        return cached[1]
    from .models import MailstackConnection

    row = (
        MailstackConnection.objects.filter(tenant__slug=tenant_slug)
        .values_list("tenant_id", "exporter_secret_hash", "policy_secret_hash", "enabled")
        .first()
    )
    config = EndpointConfig(row[0], tenant_slug, row[1], row[2], row[3]) if row else None
    with _cache_lock:
        _cache[tenant_slug] = (now + CONFIG_TTL, config)
    return config


def forget_configs() -> None:
    """Drop the cached connections (a secret changed in this process)."""
    with _cache_lock:
        _cache.clear()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _authorized(request: HttpRequest, secret_hash: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not secret_hash:
        return False
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return False
    _, _, password = decoded.partition(":")
    return hmac.compare_digest(hash_secret(password), secret_hash)


def _enqueue_drain(config: EndpointConfig) -> None:
    """The first event of a burst schedules one ingest task for the whole burst."""
    enqueue(DRAIN_TASK, config.tenant_id, countdown=DRAIN_DELAY_SECONDS)


def _queue(config: EndpointConfig, event: dict, source: str) -> None:
    if state.queue_event(config.tenant_slug, event, source=source) == 1:
        _enqueue_drain(config)


@csrf_exempt
@login_not_required
@require_POST
def rspamd_export(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    """One message Rspamd scanned (metadata_exporter, HTTP backend, JSON formatter)."""
    config = config_for(tenant_slug)
    if config is None or not config.enabled:
        return JsonResponse({"detail": "No mail servers are connected for this organisation."}, status=404)
    if not _authorized(request, config.exporter_secret_hash):
        state.note(tenant_slug, "rspamd", error="A request with a wrong or missing secret was refused.")
        return JsonResponse({"detail": "Wrong or missing secret."}, status=401)
    try:
        event = rspamd_event(json.loads(request.body))
    except ValueError:
        state.note(tenant_slug, "rspamd", error="Unreadable export: the body is not JSON.")
        return JsonResponse({"detail": "The body is not JSON."}, status=400)
    except BadRequest as exc:
        state.note(tenant_slug, "rspamd", error=f"Unreadable export: {exc}")
        return JsonResponse({"detail": str(exc)}, status=400)
    except Skipped as exc:
        state.note(tenant_slug, "rspamd", skipped=1)
        return JsonResponse({"status": "skipped", "detail": str(exc)})
    try:
        _queue(config, event, "rspamd")
    except (redis.RedisError, RuntimeError) as exc:
        logger.warning("Could not queue an Rspamd export: %s", exc)
        return JsonResponse({"detail": "Temporarily unavailable."}, status=503)
    return JsonResponse({"status": "queued", "id": event["id"]})


def _policy_answer(status: int, message: str = "") -> HttpResponse:
    if status == 0:
        return HttpResponse(ALLOW, content_type="application/json")
    return JsonResponse({"status": status, "msg": message})


@csrf_exempt
@login_not_required
@require_POST
def dovecot_policy(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    """Dovecot's authentication policy: decide (``allow``) and record (``report``); fails open."""
    try:
        config = config_for(tenant_slug)
        if config is None or not config.enabled:
            return JsonResponse({"status": 0, "detail": "No mail servers are connected."}, status=404)
        if not _authorized(request, config.policy_secret_hash):
            state.note(tenant_slug, "dovecot", error="A request with a wrong or missing secret was refused.")
            return JsonResponse({"status": 0, "detail": "Wrong or missing secret."}, status=401)
        body = json.loads(request.body)
        if not isinstance(body, dict):
            raise BadRequest("expected a JSON object")
        command = request.GET.get("command", "")
        if command == "allow":
            return _allow(config, body)
        if command == "report":
            _report(config, body)
            return _policy_answer(0)
        return JsonResponse({"status": 0, "detail": "command must be allow or report"}, status=400)
    except Exception as exc:  # fail open: our failure must never lock a user out
        logger.exception("Dovecot policy request failed; allowing")
        state.note(tenant_slug, "dovecot", error=f"{exc.__class__.__name__}: {exc}")
        return _policy_answer(0)


def _allow(config: EndpointConfig, body: dict) -> HttpResponse:
    login = str(body.get("login") or "").strip().lower()
    remote = str(body.get("remote") or "").strip()
    if not login:
        return _policy_answer(0)
    threshold, _, delay = state.tarpit_limits()
    pipe = state.client().pipeline(transaction=False)
    pipe.exists(state.disabled_key(config.tenant_slug, login))
    pipe.get(state.user_failures_key(config.tenant_slug, login))
    pipe.get(state.ip_failures_key(config.tenant_slug, remote or "-"))
    disabled, user_failures, ip_failures = pipe.execute()
    if disabled:
        return _policy_answer(-1, DISABLED_MESSAGE)
    failures = max(int(user_failures or 0), int(ip_failures or 0))
    if threshold > 0 and failures >= threshold and delay > 0:
        return _policy_answer(delay, TARPIT_MESSAGE)
    return _policy_answer(0)


def _report(config: EndpointConfig, body: dict) -> None:
    login = str(body.get("login") or "").strip().lower()
    remote = str(body.get("remote") or "").strip()
    _, window, _ = state.tarpit_limits()
    success = body.get("success") is True
    pipe = state.client().pipeline(transaction=False)
    if login and not success and body.get("policy_reject") is not True:
        for key in (
            state.user_failures_key(config.tenant_slug, login),
            state.ip_failures_key(config.tenant_slug, remote or "-"),
        ):
            pipe.incr(key)
            pipe.expire(key, window)
    elif login and success:
        pipe.delete(state.user_failures_key(config.tenant_slug, login))
    try:
        event = dovecot_sign_in(body)
    except (Skipped, BadRequest):
        pipe.execute()
        state.note(config.tenant_slug, "dovecot", skipped=1)
        return
    state.queue_event(config.tenant_slug, event, source="dovecot", pipe=pipe)
    replies = pipe.execute()
    length_index = len(replies) - 3  # queue_event added RPUSH, HSET, HINCRBY last
    if replies[length_index] == 1:
        _enqueue_drain(config)
