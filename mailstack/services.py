"""Writes of the self-hosted mail connector: connect a tenant, rotate the endpoint secrets, change the
doveadm URL, test; store what the endpoints queued; read Sieve scripts; keep the disabled-account keys.
Each write a person makes is atomic and audited; a secret is returned once and never stored in clear.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets as secrets_module
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from core.models import Tenant
from core.services import audit_change, record_audit, record_connection_test
from mailboxes.models import Mailbox
from mailflow.ingest import IngestResult, ingest_events, merge_message_details

from . import sieve, state
from .doveadm import DoveadmClient, DoveadmError, Unreachable
from .endpoints import forget_configs, hash_secret
from .exceptions import MailstackError
from .models import MailstackConnection, SieveScript

logger = logging.getLogger(__name__)

SOURCE = "mailstack"
DRAIN_BATCH = 500
DRAIN_MAX_BATCHES = 200  # a task stores at most this many batches, then hands over to the next one
SIEVE_BATCH = 100


# ------------------------------------------------------------------------------------------------ connection


def _public(connection: MailstackConnection) -> dict[str, Any]:
    return {
        "tenant": connection.tenant.name,
        "doveadm_url": connection.doveadm_url,
        "enabled": connection.enabled,
        "secrets_set_at": connection.secrets_set_at.isoformat() if connection.secrets_set_at else None,
    }


def _check_url(url: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise MailstackError("The doveadm URL must be http(s)://host:port/doveadm/v1.")
    return url


@dataclass(frozen=True)
class Secrets:
    """The two shared secrets, in clear: shown once, then only their hashes are kept."""

    exporter: str
    policy: str


def _new_secrets(connection: MailstackConnection) -> Secrets:
    fresh = Secrets(secrets_module.token_urlsafe(32), secrets_module.token_urlsafe(32))
    connection.exporter_secret_hash = hash_secret(fresh.exporter)
    connection.policy_secret_hash = hash_secret(fresh.policy)
    connection.secrets_set_at = timezone.now()
    return fresh


def connect_mail_servers(
    tenant: Tenant, *, actor: User | None, doveadm_url: str
) -> tuple[MailstackConnection, Secrets]:
    """Connect ``tenant`` to its Postfix + Dovecot + Rspamd: its connector kind becomes ``mailstack`` and two
    endpoint secrets are generated (returned in clear, once)."""
    doveadm_url = _check_url(doveadm_url)
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        if MailstackConnection.objects.filter(tenant=tenant).exists():
            raise MailstackError(f"{tenant} is connected to its mail servers already.")
        if tenant.connector_kind not in (Tenant.ConnectorKind.BUILTIN, Tenant.ConnectorKind.MAILSTACK):
            raise MailstackError(
                f"{tenant} uses the {tenant.get_connector_kind_display()} connector; disconnect it first."
            )
        connection = MailstackConnection(tenant=tenant, doveadm_url=doveadm_url, created_by=actor)
        fresh = _new_secrets(connection)
        connection.save()
        tenant.connector_kind = Tenant.ConnectorKind.MAILSTACK
        tenant.save(update_fields=["connector_kind"])
        record_audit(
            "mailstack.connection.created",
            target=connection,
            actor=actor,
            tenant=tenant,
            after=_public(connection),
        )
    forget_configs()
    return connection, fresh


def rotate_secrets(connection: MailstackConnection, *, actor: User | None) -> Secrets:
    """New endpoint secrets (the old ones stop working within a minute); returned in clear, once."""
    with transaction.atomic():
        connection = (
            MailstackConnection.objects.select_for_update(of=("self",))
            .select_related("tenant")
            .get(pk=connection.pk)
        )
        before = _public(connection)
        fresh = _new_secrets(connection)
        connection.save(update_fields=["exporter_secret_hash", "policy_secret_hash", "secrets_set_at"])
        audit_change(
            "mailstack.connection.secrets_rotated", connection, actor=actor, before=before, public=_public
        )
    forget_configs()
    return fresh


def update_connection(
    connection: MailstackConnection, *, actor: User | None, doveadm_url: str, enabled: bool
) -> MailstackConnection:
    """Change the doveadm URL, or pause / resume the endpoints, the Sieve reads and the actions."""
    doveadm_url = _check_url(doveadm_url)
    with transaction.atomic():
        connection = (
            MailstackConnection.objects.select_for_update(of=("self",))
            .select_related("tenant")
            .get(pk=connection.pk)
        )
        if connection.doveadm_url == doveadm_url and connection.enabled == enabled:
            return connection
        before = _public(connection)
        connection.doveadm_url = doveadm_url
        connection.enabled = enabled
        connection.save(update_fields=["doveadm_url", "enabled"])
        audit_change("mailstack.connection.updated", connection, actor=actor, before=before, public=_public)
    forget_configs()
    return connection


def doveadm_for(connection: MailstackConnection) -> DoveadmClient:
    if not settings.MAILSTACK_DOVEADM_API_KEY:
        raise MailstackError("MAILSTACK_DOVEADM_API_KEY is not set: the console cannot call doveadm.")
    return DoveadmClient(
        connection.doveadm_url,
        settings.MAILSTACK_DOVEADM_API_KEY,
        timeout=settings.MAILSTACK_DOVEADM_TIMEOUT_SECONDS,
    )


def test_connection(connection: MailstackConnection, *, actor: User | None = None) -> tuple[bool, str]:
    """Call doveadm (``who``: the URL and the key), read the endpoints' status (Redis reachable, events
    received from Rspamd and Dovecot); save and audit the outcome."""
    problems: list[str] = []
    notes: list[str] = []
    try:
        sessions = doveadm_for(connection).call("who", {})
        notes.append(f"doveadm answered ({len(sessions or [])} user(s) with open sessions)")
    except (DoveadmError, MailstackError) as exc:
        problems.append(str(exc))
    status = state.read_status(connection.tenant.slug)
    if "redis" in status:
        problems.append(f"Redis: {status['redis']['error']}")
    else:
        for source, label in (("rspamd", "Rspamd exporter"), ("dovecot", "Dovecot auth policy")):
            entry = status[source]
            if entry["last_at"] is None:
                problems.append(f"{label}: no request received yet (check the configuration snippet)")
            elif entry["error"] and (entry["error_at"] or 0) >= (entry["last_at"] or 0):
                problems.append(f"{label}: {entry['error']}")
            else:
                notes.append(f"{label}: {entry['count']} event(s) received")
    ok = not problems
    message = "; ".join(item.rstrip(".") for item in (problems + notes if problems else notes)) + "."
    record_connection_test(connection, "mailstack.connection.tested", ok=ok, message=message, actor=actor)
    return ok, message


# ------------------------------------------------------------------------------------------------ telemetry


def drain_events(tenant_id: int) -> IngestResult:
    """Store what the endpoints queued for a tenant, in batches, through the ingest service (lenient).

    A message Rspamd exported whose id (``postfix:<qid>``) the Postfix policy service stored first is a
    conflict for the ingest service: its verdict and details are merged into the stored row instead, so the
    message is one event. Returns the totals."""
    tenant = Tenant.objects.get(pk=tenant_id)
    client = state.client()
    key = state.events_key(tenant.slug)
    total = IngestResult()
    for _ in range(DRAIN_MAX_BATCHES):
        raw: list[bytes] = client.lpop(key, DRAIN_BATCH) or []  # type: ignore[assignment]  # lpop(key, n) returns a list
        if not raw:
            break
        events = []
        for item in raw:
            try:
                if not isinstance(item, str | bytes):
                    raise ValueError(item)
                events.append(json.loads(item))
            except ValueError:
                total.rejected += 1
        try:
            result = ingest_events(tenant, events, mode="lenient", source=SOURCE)
        except Exception:
            client.lpush(key, *reversed(raw))  # back at the head, in order: the retry stores them
            raise
        total.accepted += result.accepted
        total.duplicates += result.duplicates
        total.rejected += result.rejected
        total.errors.extend(result.errors[:20])
        if result.conflicts:
            conflicting = set(result.conflicts)
            merge_message_details(
                tenant, [e for e in events if e.get("id") in conflicting and e.get("type") == "message"]
            )
        if result.rejected:
            logger.info(
                "Mail server events of %s: %d rejected (%s)", tenant, result.rejected, result.errors[:3]
            )
    return total


def _transition(address: str, previous: SieveScript | None, script_hash: str) -> str:
    """Names one change of a mailbox's script: the same change read again (a retry after a crash) gets the
    same event ids, a later change (even back to an earlier script, as an undo does) gets new ones."""
    before = f"{previous.script_hash}:{previous.read_at.isoformat()}" if previous else ""
    return hashlib.sha256(f"{address}:{before}>{script_hash}".encode()).hexdigest()[:20]


def _sieve_events(
    address: str, previous: SieveScript | None, script: sieve.Script, script_hash: str, at: datetime
) -> list[dict[str, Any]]:
    """The contract events that turn the previous read into this one (changes only)."""
    change = _transition(address, previous, script_hash)
    events: list[dict[str, Any]] = []
    old_rules: dict[str, Any] = previous.rules if previous else {}
    new_rules = {rule_id: rule.state() for rule_id, rule in script.inbox_rules.items()}
    stamp = at.isoformat()

    def event(kind: str, key: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "id": f"sieve:{change}:{key}", "time": stamp, "mailbox": address, **fields}

    for rule_id, rule_state in new_rules.items():
        if rule_id not in old_rules:
            events.append(
                event("inbox_rule", f"{rule_id}:created", operation="created", rule_id=rule_id, **rule_state)
            )
    for rule_id, rule_state in old_rules.items():
        if rule_id not in new_rules:
            name = rule_state.get("name", "")
            events.append(
                event("inbox_rule", f"{rule_id}:deleted", operation="deleted", rule_id=rule_id, name=name)
            )
    forwarding = script.forwarding
    new_forwarding = {
        "forward_to": forwarding[0] if forwarding else None,
        "keep_copy": bool(forwarding and forwarding[1]),
    }
    old_forwarding = (previous.forwarding if previous else None) or {"forward_to": None, "keep_copy": False}
    if new_forwarding != old_forwarding:
        events.append(event("forwarding", "forwarding", **new_forwarding))
    return events


def read_active_scripts(client: DoveadmClient, addresses: list[str]) -> dict[str, tuple[str, str] | None]:
    """Each user's active Sieve script (name, text), None when it has none; unknown users are left out."""
    found: dict[str, tuple[str, str] | None] = {}
    for start in range(0, len(addresses), SIEVE_BATCH):
        chunk = addresses[start : start + SIEVE_BATCH]
        listed = client.batch([("sieveList", {"user": address}) for address in chunk])
        active: list[tuple[str, str]] = []
        for address, result in zip(chunk, listed, strict=True):
            if not result.ok:
                continue  # not a Dovecot user (67) or no Sieve storage
            names = [row.get("script") for row in result.value or [] if row.get("active") == "ACTIVE"]
            if names:
                active.append((address, names[0]))
            else:
                found[address] = None
        texts = client.batch([("sieveGet", {"user": a, "scriptname": n}) for a, n in active])
        for (address, name), result in zip(active, texts, strict=True):
            if result.ok and result.value:
                found[address] = (name, str(result.value[0].get("sieve script", "")))
    return found


def read_sieve(connection: MailstackConnection, *, addresses: list[str] | None = None) -> IngestResult:
    """Read the active Sieve script of each mailbox of the tenant through doveadm and ingest what changed
    since the last read as ``inbox_rule`` / ``forwarding`` events. Idempotent: an unchanged script emits
    nothing, and the event ids are derived from the script, so a repeated read stores nothing twice."""
    tenant = connection.tenant
    if addresses is None:
        addresses = list(
            Mailbox.objects.filter(tenant=tenant).order_by("address").values_list("address", flat=True)
        )
    client = doveadm_for(connection)
    now = datetime.now(UTC)
    try:
        scripts = read_active_scripts(client, addresses)
    except DoveadmError as exc:
        MailstackConnection.objects.filter(pk=connection.pk).update(sieve_error=str(exc))
        state.note(tenant.slug, "sieve", error=str(exc))
        raise
    previous = {
        row.address: row for row in SieveScript.objects.filter(tenant=tenant, address__in=list(scripts))
    }
    events: list[dict[str, Any]] = []
    updates: list[tuple[str, str, str, sieve.Script | None]] = []
    errors: list[str] = []
    for address, found in scripts.items():
        name, text = found if found else ("", "")
        script_hash = hashlib.sha256(f"{name}\n{text}".encode()).hexdigest()
        old = previous.get(address)
        if old is not None and old.script_hash == script_hash:
            continue
        try:
            parsed = sieve.parse(text)
        except sieve.SieveParseError as exc:
            errors.append(f"{address}: {exc}")
            continue
        events.extend(_sieve_events(address, old, parsed, script_hash, now))
        updates.append((address, name, script_hash, parsed))
    result = ingest_events(tenant, events, mode="lenient", source=SOURCE) if events else IngestResult()
    rejected_owners = {
        events[e["index"]].get("mailbox") for e in result.errors if isinstance(e.get("index"), int)
    }
    with transaction.atomic():
        for address, name, script_hash, script in updates:
            if address in rejected_owners:
                continue  # outside the accepted domains: try again next time
            forwarding = script.forwarding if script else None
            SieveScript.objects.update_or_create(
                tenant=tenant,
                address=address,
                defaults={
                    "script_name": name,
                    "script_hash": script_hash,
                    "rules": {rid: rule.state() for rid, rule in script.inbox_rules.items()}
                    if script
                    else {},
                    "forwarding": {
                        "forward_to": forwarding[0] if forwarding else None,
                        "keep_copy": bool(forwarding and forwarding[1]),
                    },
                    "read_at": timezone.now(),
                },
            )
        MailstackConnection.objects.filter(pk=connection.pk).update(
            sieve_read_at=timezone.now(), sieve_error="; ".join(errors)[:2000]
        )
    if result.accepted:
        state.note(tenant.slug, "sieve")
        state.client().hset(state.status_key(tenant.slug), "sieve:event_at", now.timestamp())
        state.client().hincrby(state.status_key(tenant.slug), "sieve:count", result.accepted)
    return result


def sieve_read_due(connection: MailstackConnection) -> bool:
    if connection.sieve_read_at is None:
        return True
    return (
        timezone.now() - connection.sieve_read_at
    ).total_seconds() >= settings.MAILSTACK_SIEVE_READ_SECONDS


# ------------------------------------------------------------------------------------------------ accounts


def set_account_disabled(tenant: Tenant, address: str, disabled: bool) -> None:
    """Write (or delete) the disabled-account key: Dovecot's policy refuses the sign-in, the Postfix policy
    service refuses the sender."""
    key = state.disabled_key(tenant.slug, address)
    client = state.client()
    if disabled:
        client.set(key, "1")
    else:
        client.delete(key)


def sync_disabled_keys(tenant: Tenant) -> int:
    """Rewrite a tenant's disabled-account keys from the directory (``Mailbox.account_enabled``) and delete
    the others. Returns the number of disabled accounts."""
    client = state.client()
    wanted = {
        state.disabled_key(tenant.slug, address)
        for address in Mailbox.objects.filter(tenant=tenant, account_enabled=False).values_list(
            "address", flat=True
        )
    }
    present = {
        k.decode() if isinstance(k, bytes) else k
        for k in client.scan_iter(state.disabled_pattern(tenant.slug), count=1000)
    }
    pipe = client.pipeline(transaction=False)
    for key in wanted - present:
        pipe.set(key, "1")
    stale = present - wanted
    if stale:
        pipe.delete(*stale)
    pipe.execute()
    return len(wanted)


__all__ = [
    "DoveadmError",
    "Unreachable",
    "connect_mail_servers",
    "drain_events",
    "read_sieve",
    "rotate_secrets",
    "set_account_disabled",
    "sync_disabled_keys",
    "test_connection",
    "update_connection",
]
