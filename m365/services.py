"""Writes of the Microsoft 365 connector: connect a tenant, change its credential, enable / disable,
test the connection, disconnect. Each is atomic and audited; no secret ever reaches an audit row, a log
line, a page or an API response (only "set on <date>")."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from core.models import Tenant
from core.queueing import enqueue_on_commit
from core.services import audit_change, record_audit, record_connection_test

from . import crypto, permissions
from .client import GraphError, M365Client, Throttled, Unreachable, forget_apps, token_claims
from .exceptions import M365Error
from .models import M365Connection, Source

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9-]{1,63}\.)+[a-z]{2,63}$", re.IGNORECASE)
# Tests use readable ids ("contoso-tenant-id"); Microsoft's are GUIDs or a verified domain.
LOOSE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{2,99}$")


@dataclass(frozen=True)
class Credential:
    """A checked credential, ready to store: ciphertext and, for a certificate, its SHA-1 thumbprint."""

    kind: str
    ciphertext: str
    thumbprint: str = ""


def _check_id(value: str, label: str, *, allow_domain: bool) -> str:
    value = (value or "").strip()
    if GUID.match(value) or (allow_domain and DOMAIN.match(value)) or LOOSE_ID.match(value):
        return value.lower() if GUID.match(value) or DOMAIN.match(value) else value
    raise M365Error(f"The {label} must be a GUID{' or a domain' if allow_domain else ''}.")


def check_credential(kind: str, secret: str) -> Credential:
    """Validate a client secret or a PEM holding the certificate and its private key; encrypt it."""
    secret = (secret or "").strip()
    if kind == M365Connection.Credential.SECRET:
        if len(secret) < 8 or any(c.isspace() for c in secret):
            raise M365Error("The client secret looks wrong: paste the secret's Value (not its ID).")
        return Credential(kind, crypto.encrypt(secret))
    if kind != M365Connection.Credential.CERTIFICATE:
        raise M365Error("Choose a client secret or a certificate.")
    data = secret.encode()
    try:
        certificate = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise M365Error("The PEM must hold the app's certificate (BEGIN CERTIFICATE).") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise M365Error("The PEM must also hold the certificate's unencrypted private key.") from exc
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    thumbprint = hashlib.sha1(certificate.public_bytes(serialization.Encoding.DER)).hexdigest().upper()  # noqa: S324 - Entra's certificate thumbprint is SHA-1
    return Credential(kind, crypto.encrypt(key_pem), thumbprint)


def _public(connection: M365Connection) -> dict:
    """What the audit trail records of a connection: ids and state, never the credential."""
    return {
        "tenant": connection.tenant.name,
        "directory_id": connection.directory_id,
        "client_id": connection.client_id,
        "credential_type": connection.credential_type,
        "certificate_thumbprint": connection.certificate_thumbprint,
        "credential_set_at": connection.credential_set_at.isoformat(),
        "enabled": connection.enabled,
    }


def connect_tenant(
    *,
    actor: User | None,
    name: str,
    directory_id: str,
    client_id: str,
    credential_type: str,
    secret: str,
    tenant: Tenant | None = None,
) -> M365Connection:
    """Register a Microsoft 365 tenant: a new console tenant named ``name`` (or the given ``tenant``) whose
    connector kind becomes ``m365``, with an encrypted credential."""
    directory_id = _check_id(directory_id, "directory (tenant) ID", allow_domain=True)
    client_id = _check_id(client_id, "application (client) ID", allow_domain=False)
    credential = check_credential(credential_type, secret)
    name = (name or "").strip() or (tenant.name if tenant else "")
    if not name:
        raise M365Error("Give the organisation a name.")
    try:
        with transaction.atomic():
            if tenant is None:
                if Tenant.objects.filter(name=name).exists():
                    raise M365Error(f"An organisation named “{name}” exists already.")
                tenant = Tenant.objects.create(name=name, slug=_free_slug(name))
            elif M365Connection.objects.filter(tenant=tenant).exists():
                raise M365Error(f"{tenant} is connected to Microsoft 365 already.")
            if M365Connection.objects.filter(directory_id=directory_id).exists():
                raise M365Error(f"The Microsoft 365 tenant {directory_id} is connected already.")
            tenant.connector_kind = Tenant.ConnectorKind.M365
            tenant.save(update_fields=["connector_kind"])
            connection = M365Connection.objects.create(
                tenant=tenant,
                directory_id=directory_id,
                client_id=client_id,
                credential_type=credential.kind,
                credential_ciphertext=credential.ciphertext,
                certificate_thumbprint=credential.thumbprint,
                created_by=actor,
            )
            record_audit(
                "m365.connection.created",
                target=connection,
                actor=actor,
                tenant=tenant,
                after=_public(connection),
            )
    except IntegrityError as exc:
        raise M365Error("This organisation or Microsoft 365 tenant is connected already.") from exc
    return connection


def _free_slug(name: str) -> str:
    base = slugify(name)[:50] or "tenant"
    slug, n = base, 1
    while Tenant.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def change_credential(
    connection: M365Connection, *, actor: User | None, credential_type: str, secret: str
) -> M365Connection:
    """Replace the credential (a rotated secret, a new certificate); the cached MSAL client is dropped."""
    credential = check_credential(credential_type, secret)
    with transaction.atomic():
        before = _public(connection)
        connection.credential_type = credential.kind
        connection.credential_ciphertext = credential.ciphertext
        connection.certificate_thumbprint = credential.thumbprint
        connection.credential_set_at = timezone.now()
        connection.test_ok = None
        connection.save()
        audit_change(
            "m365.connection.credential_changed", connection, actor=actor, before=before, public=_public
        )
    forget_apps()
    return connection


def set_enabled(connection: M365Connection, *, actor: User | None, enabled: bool) -> M365Connection:
    """Pause or resume the pulls and actions of a connection."""
    with transaction.atomic():
        if connection.enabled == enabled:
            return connection
        before = _public(connection)
        connection.enabled = enabled
        connection.save(update_fields=["enabled"])
        verb = "enabled" if enabled else "disabled"
        audit_change(f"m365.connection.{verb}", connection, actor=actor, before=before, public=_public)
    return connection


def request_pull(connection: M365Connection, *, actor: User | None, source: str = "") -> None:
    """Queue a pull of every source (or of ``source``) now, whether it is due or not; audited.

    The one place of the manual-pull rule: a disabled connection does not pull, and a source must be one of
    :class:`Source`. The pull itself is ``m365.pull`` (forced), enqueued once the audit row commits.
    """
    if source and source not in Source.values:
        raise M365Error("Choose a source to pull.")
    if not connection.enabled:
        raise M365Error("The connection is disabled: enable it to pull.")
    with transaction.atomic():
        record_audit(
            "m365.connection.pull_requested",
            target=connection,
            actor=actor,
            tenant=connection.tenant,
            after={"source": source or "all"},
        )
        enqueue_on_commit("m365.pull", connection.pk, source, True)


def disconnect(connection: M365Connection, *, actor: User | None) -> Tenant:
    """Forget the connection and its credential; the organisation and its telemetry stay (kind built-in)."""
    with transaction.atomic():
        tenant = connection.tenant
        record_audit(
            "m365.connection.deleted",
            target=connection,
            actor=actor,
            tenant=tenant,
            before=_public(connection),
        )
        connection.delete()
        tenant.connector_kind = Tenant.ConnectorKind.BUILTIN
        tenant.save(update_fields=["connector_kind"])
    forget_apps()
    return tenant


@dataclass(frozen=True)
class TestResult:
    ok: bool
    message: str
    granted: list[str]
    missing: list[permissions.Requirement]
    # Prerequisites beyond the permissions that a probe found missing, one sentence each.
    prerequisites: tuple[str, ...] = ()


# The app Microsoft's message trace API runs as; its service principal must exist in the tenant.
MESSAGE_TRACE_APP_ID = "8bd644d1-64a1-4d4b-ae52-2e0cbf64e373"
NON_PREMIUM = "Authentication_RequestFromNonPremiumTenantOrB2CTenant"


def _probe(name: str, call: Callable[[], object]) -> str:
    """Run one probe; "" when it answered, else a sentence naming the prerequisite and the fix."""
    try:
        call()
    except GraphError as exc:
        return (
            PROBE_ADVICE.get((name, exc.code), PROBE_ADVICE.get((name, exc.status), "")).format(
                error=str(exc)
            )
            or f"{name}: {exc}"
        )
    except (M365Error, Throttled, Unreachable) as exc:
        return f"{name}: {exc}"
    return ""


PROBE_ADVICE: dict[tuple[str, object], str] = {
    ("Message trace", 403): (
        "Message trace: refused ({error}). The tenant needs the service principal of Microsoft's message "
        f"trace app: run New-MgServicePrincipal -AppId {MESSAGE_TRACE_APP_ID} once as an administrator."
    ),
    ("Sign-ins", NON_PREMIUM): (
        "Sign-ins: the sign-in log API needs Microsoft Entra ID P1 or P2 in the tenant (a licence, or a "
        "trial); without it sign-ins are not read."
    ),
}


def _probes(client: M365Client, roles: dict[str, set[str]]) -> list[str]:
    """Read one item from each API the granted permissions allow, to find what a token cannot show: the
    message-trace service principal, the Entra ID P1 licence, the Management API answering for the tenant."""
    graph_roles, found = roles.get(permissions.GRAPH, set()), []
    now = timezone.now().replace(microsecond=0)
    hour_ago = now - timedelta(hours=1)

    def window(field: str) -> str:
        return f"{field} ge {hour_ago:%Y-%m-%dT%H:%M:%SZ} and {field} lt {now:%Y-%m-%dT%H:%M:%SZ}"

    if permissions.requirement("Read sent mail (message trace)").satisfied_by(graph_roles):
        url = client.graph("/admin/exchange/tracing/messageTraces")
        params = {"$filter": window("receivedDateTime"), "$top": "1"}
        found.append(_probe("Message trace", lambda: client.get_json(url, params=params)))
    if permissions.requirement("Read sign-ins").satisfied_by(graph_roles):
        url = client.graph("/auditLogs/signIns")
        params = {"$filter": window("createdDateTime"), "$top": "1"}
        found.append(_probe("Sign-ins", lambda: client.get_json(url, params=params)))
    if any(permissions.requirement(f).satisfied_by(graph_roles) for f in permissions.SENSITIVE_FEATURES):
        directory_roles = set(token_claims(client.token(permissions.GRAPH)).get("wids") or [])
        if not directory_roles & permissions.SENSITIVE_ATTRIBUTE_ROLES:
            found.append(
                "Password reset and disable: the app holds no directory role that may change passwords and "
                "sign-in state. Assign it User Administrator (Privileged Authentication Administrator to act "
                "on administrators) in Entra admin center → Roles & admins."
            )
    if permissions.requirement("Read the Exchange audit log").satisfied_by(
        roles.get(permissions.MANAGEMENT, set())
    ):
        url = client.management("/subscriptions/list")
        found.append(
            _probe("Management Activity API", lambda: client.get_json(url, api=permissions.MANAGEMENT))
        )
    return [problem for problem in found if problem]


def test_connection(connection: M365Connection, *, actor: User | None = None) -> TestResult:
    """Sign in as the app for Graph and for the Management API and compare the roles in the tokens with
    :data:`~m365.permissions.REQUIREMENTS`; the result (missing permissions by name) is saved and audited."""
    client = M365Client(connection)
    roles: dict[str, set[str]] = {}
    problems: list[str] = []
    for api in (permissions.GRAPH, permissions.MANAGEMENT):
        try:
            roles[api] = client.roles(api)
        except (M365Error, Throttled, Unreachable) as exc:
            problems.append(f"{'Graph' if api == permissions.GRAPH else 'Management API'}: {exc}")
    missing = permissions.missing(roles) if not problems else []
    granted = sorted(role for api_roles in roles.values() for role in api_roles)
    prerequisites = _probes(client, roles) if not problems else []
    if problems:
        message = "Sign-in failed. " + " ".join(problems)
    else:
        parts = []
        if missing:
            names = ", ".join(f"{req.least} ({req.api_label}, to {req.feature.lower()})" for req in missing)
            parts.append(f"missing application permission(s): {names}.")
        parts.extend(prerequisites)
        if not parts:
            parts.append("every permission the connector uses is granted and every API answered.")
        message = "Signed in; " + " ".join(parts)
    ok = not problems and not missing and not prerequisites
    record_connection_test(
        connection,
        "m365.connection.tested",
        ok=ok,
        message=message,
        actor=actor,
        granted_permissions=granted,
        missing_permissions=[req.least for req in missing],
    )
    return TestResult(
        ok=ok, message=message, granted=granted, missing=missing, prerequisites=tuple(prerequisites)
    )
