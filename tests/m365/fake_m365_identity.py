"""The Microsoft identity platform of the fake Microsoft 365: the OpenID configuration MSAL discovers with
``instance_discovery=False`` and the v2.0 token endpoint's client-credentials grant (a client secret, in the
form or HTTP Basic, or a certificate's ``client_assertion``), with errors in the platform's ``AADSTS…`` words.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

import jwt

from .fake_m365_graph import ApiError, Reply, Request

if TYPE_CHECKING:
    from .fake_m365 import FakeM365

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Scopes MSAL may add to any request; they do not name a resource.
RESERVED_SCOPES = {"openid", "profile", "offline_access"}
OPENID_PATH = re.compile(r"/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration")
TOKEN_PATH = re.compile(r"/(?P<tenant>[^/]+)/oauth2/v2\.0/token")
_NOT_INSTALLED = (
    "This can happen if the application has not been installed by the administrator of the tenant or "
    "consented to by any user in the tenant."
)


def known_tenant(fake: FakeM365, tenant: str) -> bool:
    """The directory is addressed by its id or by one of its domain names."""
    return tenant in (fake.directory_id, fake.tenant_id) or tenant.lower() in {
        str(d.get("id", "")).lower() for d in fake.domains
    }


def openid_configuration(fake: FakeM365, req: Request, tenant: str) -> Reply:
    """``GET /{tenant}/v2.0/.well-known/openid-configuration``: MSAL reads ``authorization_endpoint`` and
    ``token_endpoint`` (required), ``issuer`` and ``device_authorization_endpoint``."""
    if not known_tenant(fake, tenant):
        raise aad_error(req, 400, "invalid_tenant", 90002, _tenant_not_found(tenant))
    base = f"{fake.base_url}/{fake.directory_id}"
    return Reply(
        200,
        {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{fake.base_url}/{fake.directory_id}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "msgraph_host": "graph.microsoft.com",
        },
    )


def token_endpoint(fake: FakeM365, req: Request, tenant: str, form: dict[str, str]) -> Reply:
    """``POST /{tenant}/oauth2/v2.0/token`` with ``grant_type=client_credentials``: an app-only access token
    for the one resource named by ``scope`` (``<resource>/.default``)."""
    if req.method != "POST":
        raise aad_error(req, 400, "invalid_request", 900561, "The endpoint only accepts POST requests.")
    if not known_tenant(fake, tenant):
        raise aad_error(req, 400, "invalid_request", 90002, _tenant_not_found(tenant))
    basic_id, basic_secret = _basic_credentials(req.headers.get("authorization", ""))
    grant_type = form.get("grant_type", "")
    client_id = form.get("client_id") or basic_id
    if not grant_type:
        raise aad_error(req, 400, "invalid_request", 900144, _missing("grant_type"))
    if grant_type != "client_credentials":
        raise aad_error(
            req,
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant_type}'.",
        )
    if not client_id:
        raise aad_error(req, 400, "invalid_request", 900144, _missing("client_id"))
    if client_id != fake.client_id:
        raise aad_error(
            req,
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. "
            + _NOT_INSTALLED,
        )
    if form.get("client_assertion_type") or form.get("client_assertion"):
        _check_assertion(fake, req, form)
        certificate = True
    else:
        secret = form.get("client_secret") or basic_secret
        if not secret:
            raise aad_error(
                req, 401, "invalid_client", 7000218, _missing("client_assertion' or 'client_secret")
            )
        if not secrets.compare_digest(secret.encode(), fake.client_secret.encode()):
            raise aad_error(
                req,
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the "
                f"client secret value, not the client secret ID, for a secret added to app "
                f"'{fake.client_id}'.",
            )
        certificate = False
    audience = _audience(fake, req, form.get("scope", ""), tenant)
    token = fake.issue_token(audience, certificate=certificate)
    reply = {
        "token_type": "Bearer",
        "expires_in": fake.token_lifetime,
        "ext_expires_in": fake.token_lifetime,
    }
    return Reply(200, {**reply, "access_token": token}, {"Cache-Control": "no-store, no-cache"})


def _check_assertion(fake: FakeM365, req: Request, form: dict[str, str]) -> None:
    """A certificate credential: a JWT naming its certificate by thumbprint (``x5t`` / ``x5t#S256``); the
    signature is not verified, the thumbprint is when :attr:`FakeM365.certificate_thumbprints` is set."""
    if form.get("client_assertion_type") != JWT_BEARER:
        raise aad_error(
            req,
            400,
            "invalid_request",
            50027,
            "Invalid client_assertion_type: only jwt-bearer is supported.",
        )
    try:
        header = jwt.get_unverified_header(form.get("client_assertion", ""))
        claims = jwt.decode(form.get("client_assertion", ""), options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise aad_error(req, 401, "invalid_client", 50027, "JWT token is invalid or malformed.") from None
    prints = [header[name] for name in ("x5t", "x5t#S256") if isinstance(header.get(name), str)]
    registered = {_normal_thumbprint(t) for t in fake.certificate_thumbprints}
    if not prints or (registered and not registered & {_normal_thumbprint(p) for p in prints}):
        raise aad_error(
            req,
            401,
            "invalid_client",
            700027,
            "The certificate with identifier used to sign the client assertion is not registered on "
            f"application. [Reason - The key was not found., Thumbprint of key used by client: "
            f"'{prints[0] if prints else ''}']",
        )
    if int(claims.get("exp", 0)) <= time.time():
        raise aad_error(
            req, 401, "invalid_client", 700024, "Client assertion is not within its valid time range."
        )


def _audience(fake: FakeM365, req: Request, scope: str, tenant: str) -> str:
    if not scope:
        raise aad_error(req, 400, "invalid_request", 900144, _missing("scope"))
    resources = [s for s in scope.split() if s not in RESERVED_SCOPES]
    if len(resources) != 1 or not resources[0].endswith("/.default"):
        raise aad_error(
            req,
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must have a "
            "scope value with /.default suffixed to the resource identifier (application ID URI).",
        )
    resource = resources[0].removesuffix("/.default").rstrip("/")
    if resource not in fake.granted_roles:
        raise aad_error(
            req,
            400,
            "invalid_resource",
            500011,
            f"The resource principal named {resource} was not found in the tenant named {tenant}. "
            + _NOT_INSTALLED,
        )
    return resource


def aad_error(req: Request, status: int, error: str, code: int, message: str, **headers: str) -> ApiError:
    """The identity platform's OAuth 2.0 error shape (never containing the client's secret)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    trace_id = str(uuid.uuid4())
    description = (
        f"AADSTS{code}: {message} Trace ID: {trace_id} Correlation ID: {req.client_request_id} "
        f"Timestamp: {stamp}"
    )
    body = {
        "error": error,
        "error_description": description,
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": req.client_request_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return ApiError(Reply(status, body, dict(headers)))


def _tenant_not_found(tenant: str) -> str:
    return (
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing "
        "into the correct cloud. Check with your subscription administrator, this may happen if there are no "
        "active subscriptions for the tenant."
    )


def _missing(name: str) -> str:
    return f"The request body must contain the following parameter: '{name}'."


def _basic_credentials(authorization: str) -> tuple[str, str]:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
    except ValueError:
        return "", ""
    return unquote_plus(user), unquote_plus(password)


def _normal_thumbprint(value: str) -> str:
    """Upper-case hex of a thumbprint given as hex (with or without colons) or base64url (as in x5t)."""
    compact = value.replace(":", "").strip()
    if re.fullmatch(r"[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64}", compact):
        return compact.upper()
    try:
        return base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4)).hex().upper()
    except ValueError:
        return compact
