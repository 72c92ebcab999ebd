"""A fake Microsoft 365 for tests: the identity platform's token endpoint, Microsoft Graph and the Office 365
Management Activity API, served over HTTPS on 127.0.0.1 by one in-process server.

MSAL refuses plain-HTTP authorities, so the server presents a certificate from a throw-away CA (``trustme``);
clients pass :attr:`FakeM365.ca_bundle` as ``verify=``. One server plays every host::

    fake = FakeM365().start()
    app = msal.ConfidentialClientApplication(
        fake.client_id, authority=f"{fake.authority_host}/{fake.directory_id}",
        client_credential=fake.client_secret, instance_discovery=False, verify=fake.ca_bundle)
    token = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])["access_token"]
    requests.get(f"{fake.graph_url}/v1.0/users", headers={"Authorization": f"Bearer {token}"},
                 verify=fake.ca_bundle)

Tests fill and inspect the tenant state (plain lists and dicts; hold :attr:`FakeM365.lock` when changing it
while requests are in flight), provoke failures with :meth:`~FakeM365.throttle`, :meth:`~FakeM365.fail`,
:meth:`~FakeM365.delay` and :meth:`~FakeM365.expire_tokens`, and read every exchange in
:attr:`FakeM365.requests`. The endpoints live in ``fake_m365_identity``, ``fake_m365_graph`` and
``fake_m365_feed``; the data builders (re-exported here) in ``fake_m365_builders``.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import ssl
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit

import jwt
import trustme

from .fake_m365_builders import audit, domain, message, rule, rule_object_id, sign_in, trace, traces, user
from .fake_m365_feed import feed_error, handle_management
from .fake_m365_graph import GRAPH, MANAGEMENT, ApiError, Reply, Request, graph_error, handle_graph
from .fake_m365_identity import OPENID_PATH, TOKEN_PATH, aad_error, openid_configuration, token_endpoint

__all__ = [
    "GRAPH",
    "GRAPH_ROLES",
    "MANAGEMENT",
    "MANAGEMENT_ROLES",
    "FakeM365",
    "Recorded",
    "audit",
    "domain",
    "message",
    "rule",
    "rule_object_id",
    "sign_in",
    "trace",
    "traces",
    "user",
]

# Every application role an operation of the fake accepts: what a fully consented app registration holds.
GRAPH_ROLES = (
    "AuditLog.Read.All",
    "Directory.Read.All",
    "Domain.Read.All",
    "ExchangeMessageTrace.Read.All",
    "Mail.Read",
    "Mail.ReadWrite",
    "MailboxSettings.Read",
    "MailboxSettings.ReadWrite",
    "User-PasswordProfile.ReadWrite.All",
    "User.EnableDisableAccount.All",
    "User.Read.All",
    "User.ReadWrite.All",
    "User.RevokeSessions.All",
)
MANAGEMENT_ROLES = ("ActivityFeed.Read",)

# Directory role template ids (the same in every tenant), as an app-only token's ``wids`` claim lists them.
ROLE_TEMPLATE_IDS = {
    "Global Administrator": "62e90394-69f5-4237-9190-012177145e10",
    "User Administrator": "fe930be7-5e62-47db-91af-98c3a49a38b1",
    "Privileged Authentication Administrator": "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
    "Authentication Administrator": "c4e39bd9-1100-46d3-8c65-fb160da0071f",
    "Helpdesk Administrator": "729827e3-9c14-49f7-bb1b-9608f156bbb8",
}
# Every service principal's implicit role.
DEFAULT_SERVICE_PRINCIPAL_ROLE = "0997a1d0-0d1d-4acb-b408-d5ca73121e90"

_GRAPH = re.compile(r"/graph/(?P<version>v1\.0|beta)(?P<rest>/.*)")
_FEED = re.compile(r"/manage/api/v1(?:\.0)?/(?P<tenant>[^/]+)/activity/feed(?P<rest>/.*)")


@dataclass(frozen=True)
class Recorded:
    """One request the fake received and what it answered. ``headers`` have lower-case names; ``json`` is the
    parsed JSON body (None when absent or malformed); ``form`` the token endpoint's form, secrets masked."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    status: int
    client_request_id: str
    form: dict[str, str] | None = None
    # When the request arrived (UTC) and the headers answered (``request-id`` …).
    at: datetime | None = None
    response_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    kind: str  # "throttle" | "fail"
    prefix: str
    remaining: int
    status: int
    retry_after: int = 0
    body: dict[str, Any] | None = None
    skip: int = 0  # matching requests let through before the fault applies


@dataclass
class _Delay:
    prefix: str
    seconds: float
    remaining: int


class _TokenRejected(Exception):
    def __init__(self, message: str, *, presented: bool = True) -> None:
        super().__init__(message)
        self.presented = presented


class FakeM365:
    """The fake tenant and its HTTPS server (see the module docstring)."""

    def __init__(
        self,
        *,
        directory_id: str = "contoso-tenant-id",
        client_id: str = "app-client-id",
        client_secret: str = "s3cret-Value~abc",
        page_size: int = 50,
    ) -> None:
        self.directory_id = directory_id
        # The directory's GUID: the ``tid`` of every token, and the only tenant the Management API accepts.
        # ``directory_id`` (what a connection is registered with) may be this GUID or a name the authority
        # knows, as a verified domain is.
        self.tenant_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"tenant.{directory_id}"))
        self.client_id = client_id
        self.client_secret = client_secret
        self.page_size = page_size
        # Tenant state the tests fill and inspect.
        self.domains: list[dict[str, Any]] = []
        self.users: list[dict[str, Any]] = []
        self.message_traces: list[dict[str, Any]] = []
        self.sign_ins: list[dict[str, Any]] = []
        self.audit_records: list[dict[str, Any]] = []
        self.inbox_rules: dict[str, list[dict[str, Any]]] = {}
        self.mailbox_messages: dict[str, list[dict[str, Any]]] = {}
        self.granted_roles: dict[str, list[str]] = {
            GRAPH: list(GRAPH_ROLES),
            MANAGEMENT: list(MANAGEMENT_ROLES),
        }
        # Management Activity API subscriptions by content type: {"contentType", "status", "webhook"}.
        self.subscriptions: dict[str, dict[str, Any]] = {}
        # Certificate credentials: SHA-1 / SHA-256 thumbprints (hex, or base64url as in x5t) accepted in a
        # client assertion's header; empty accepts any certificate.
        self.certificate_thumbprints: set[str] = set()
        self.token_lifetime = 3599
        # A content listing whose startTime is older than this is refused (AF20030), as Microsoft's.
        self.audit_lookback = timedelta(days=7)
        # Prerequisites a token does not show. The tenant has Entra ID P1 (else signIns answers 403
        # Authentication_RequestFromNonPremiumTenantOrB2CTenant); the message-trace app's service principal
        # is provisioned (else messageTraces answers 403); the app's service principal holds these directory
        # roles (passwordProfile / accountEnabled need User Administrator, or Privileged Authentication
        # Administrator when the target holds an admin role, on top of the permission).
        self.entra_premium = True
        self.trace_service_principal = True
        self.app_directory_roles: set[str] = {"User Administrator"}
        # UPNs of users with a mail address but no Exchange Online mailbox (404 MailboxNotEnabledForRESTAPI).
        self.mailboxless: set[str] = set()
        self.requests: list[Recorded] = []
        self.tokens_issued = 0
        # Tracebacks of bugs in the fake itself (answered 500), so a test can assert there were none.
        self.internal_errors: list[str] = []
        self.content_cache: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.RLock()
        self._signing_key = secrets.token_bytes(32)
        self._issued: set[str] = set()
        self._tokens: list[str] = []
        self._revoked: set[str] = set()
        self._faults: list[_Fault] = []
        self._delays: list[_Delay] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: str | None = None
        self._base_url = ""
        self._ca_bundle = ""

    # ------------------------------------------------------------------------------------------- lifecycle

    def start(self) -> FakeM365:
        """Serve over HTTPS on a free port of 127.0.0.1 from a background thread."""
        ca = trustme.CA()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._tmpdir = tempfile.mkdtemp(prefix="fake-m365-")
        self._ca_bundle = str(Path(self._tmpdir) / "ca.pem")
        ca.cert_pem.write_to_path(self._ca_bundle)
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), self, context)
        self._base_url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-m365", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (cutting short any delay in progress) and delete the CA file."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> FakeM365:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:<port>``: authority host, Graph and Management API are all this server."""
        if not self._base_url:
            raise RuntimeError("FakeM365 is not started: call start() first.")
        return self._base_url

    @property
    def ca_bundle(self) -> str:
        """Path of the PEM of the CA that signed the server's certificate (pass it as ``verify=``)."""
        if not self._ca_bundle:
            raise RuntimeError("FakeM365 is not started: call start() first.")
        return self._ca_bundle

    @property
    def authority_host(self) -> str:
        return self.base_url

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/graph"

    @property
    def management_url(self) -> str:
        return f"{self.base_url}/manage"

    # ------------------------------------------------------------------------------------------- behaviours

    def throttle(self, path_prefix: str, times: int = 1, retry_after: int = 1, status: int = 429) -> None:
        """The next ``times`` requests whose path starts with ``path_prefix`` (e.g. ``/graph/v1.0/users``, or
        a full URL of this server) answer ``status`` with ``Retry-After`` and the API's throttling error."""
        with self.lock:
            self._faults.append(_Fault("throttle", self._prefix(path_prefix), times, status, retry_after))

    def fail(
        self,
        path_prefix: str,
        status: int,
        times: int = 1,
        body: dict[str, Any] | None = None,
        *,
        after: int = 0,
    ) -> None:
        """The next ``times`` matching requests answer ``status`` with ``body`` (default: the API's error
        shape with a code that fits the status), once ``after`` matching requests have been let through."""
        with self.lock:
            fault = _Fault("fail", self._prefix(path_prefix), times, status, body=body, skip=after)
            self._faults.append(fault)

    def clear_failures(self) -> None:
        """Forget every pending throttle and failure."""
        with self.lock:
            self._faults.clear()

    def delay(self, path_prefix: str, seconds: float, times: int = 1) -> None:
        """The next ``times`` matching requests are answered only after ``seconds`` (to provoke timeouts)."""
        with self.lock:
            self._delays.append(_Delay(self._prefix(path_prefix), seconds, times))

    def expire_tokens(self) -> None:
        """Every access token issued so far is refused from now on (401), as if it had expired."""
        with self.lock:
            self._revoked |= self._issued

    def _prefix(self, path_prefix: str) -> str:
        if self._base_url and path_prefix.startswith(self._base_url):
            return path_prefix[len(self._base_url) :] or "/"
        return path_prefix

    # ------------------------------------------------------------------------------------------- tokens

    def issue_token(self, audience: str, *, certificate: bool = False) -> str:
        """A signed access token for ``audience`` carrying the roles granted now (what the token endpoint
        returns)."""
        now = int(time.time())
        jti = uuid.uuid4().hex
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{self.directory_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.token_lifetime,
            "appid": self.client_id,
            "appidacr": "2" if certificate else "1",
            "idtyp": "app",
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{self.client_id}")),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{self.client_id}")),
            "roles": sorted(self.granted_roles.get(audience, [])),
            "tid": self.tenant_id,
            "wids": sorted(
                {DEFAULT_SERVICE_PRINCIPAL_ROLE} | {ROLE_TEMPLATE_IDS[r] for r in self.app_directory_roles}
            ),
            "ver": "1.0",
            "jti": jti,
            "uti": base64.urlsafe_b64encode(bytes.fromhex(jti)).decode().rstrip("="),
        }
        token = jwt.encode(claims, self._signing_key, algorithm="HS256", headers={"kid": "fake-m365"})
        with self.lock:
            self._issued.add(jti)
            self._tokens.append(token)
            self.tokens_issued += 1
        return token

    def issued_tokens(self) -> list[str]:
        """Every access token issued so far (to check none of them reaches a log or a page)."""
        with self.lock:
            return list(self._tokens)

    def authenticate(self, req: Request, audience: str) -> dict[str, Any]:
        """The claims of the request's bearer token, or an :class:`ApiError` 401 in the API's words."""
        try:
            return self._claims(req.headers.get("authorization", ""), audience)
        except _TokenRejected as exc:
            challenge = 'Bearer realm=""'
            if exc.presented:
                challenge += f', error="invalid_token", error_description="{exc}"'
            if audience == MANAGEMENT:
                raise feed_error(
                    401,
                    "AF10001",
                    "The permission set () sent in the request did not include the expected permission "
                    f"ActivityFeed.Read. ({exc})",
                    **{"WWW-Authenticate": challenge},
                ) from None
            raise graph_error(
                req, 401, "InvalidAuthenticationToken", str(exc), **{"WWW-Authenticate": challenge}
            ) from None

    def _claims(self, authorization: str, audience: str) -> dict[str, Any]:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _TokenRejected("Access token is empty.", presented=False)
        try:
            claims = jwt.decode(
                token.strip(),
                self._signing_key,
                algorithms=["HS256"],
                options={"verify_exp": False, "verify_aud": False},
            )
        except jwt.InvalidTokenError:
            raise _TokenRejected("Access token validation failure. Invalid signature or format.") from None
        jti = claims.get("jti")
        with self.lock:
            issued, revoked = jti in self._issued, jti in self._revoked
        if not issued:
            raise _TokenRejected("Access token validation failure.")
        if revoked or claims.get("exp", 0) <= time.time():
            raise _TokenRejected("Access token has expired or is not yet valid.")
        if claims.get("aud") != audience:
            raise _TokenRejected("Access token validation failure. Invalid audience.")
        return claims

    # ------------------------------------------------------------------------------------------- dispatch

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        """Answer one HTTP request: record it, apply delays and faults, then route it."""
        arrived = datetime.now(UTC)
        split = urlsplit(target)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        client_request_id = headers.get("client-request-id") or str(uuid.uuid4())
        req = Request(method, path, query, headers, body, None, str(uuid.uuid4()), client_request_id)
        identity = not path.startswith(("/graph/", "/manage/"))
        form = None
        if identity and method == "POST":
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        try:
            self._wait(path)
            reply = self._fault(req, path)
            if reply is None:
                if not identity and body:
                    try:
                        req.json = json.loads(body)
                    except ValueError:
                        raise self._malformed(req) from None
                with self.lock:
                    reply = self._route(req, form or {})
        except ApiError as exc:
            reply = exc.reply
        except Exception:  # noqa: BLE001 - a bug of the fake: answer 500 and keep the traceback for the test to see
            self.internal_errors.append(traceback.format_exc())
            reply = Reply(
                500,
                {"error": {"code": "generalException", "message": "The fake failed; see internal_errors."}},
            )
        reply.headers.setdefault("request-id", req.request_id)
        reply.headers.setdefault("client-request-id", client_request_id)
        if identity:
            reply.headers.setdefault("x-ms-request-id", req.request_id)
        self._record(req, reply, form, arrived)
        return reply

    def _route(self, req: Request, form: dict[str, str]) -> Reply:
        if match := _GRAPH.fullmatch(req.path):
            req.version = match["version"]
            return handle_graph(self, req, match["rest"])
        if match := _FEED.fullmatch(req.path):
            return handle_management(self, req, match["tenant"], match["rest"])
        if match := OPENID_PATH.fullmatch(req.path):
            return openid_configuration(self, req, unquote_plus(match["tenant"]))
        if match := TOKEN_PATH.fullmatch(req.path):
            return token_endpoint(self, req, unquote_plus(match["tenant"]), form)
        if req.path.startswith("/manage/"):
            raise feed_error(
                404, "NotFound", f"No HTTP resource was found that matches the request URI '{req.path}'."
            )
        raise graph_error(
            req, 404, "Request_ResourceNotFound", f"Resource not found for the segment '{req.path}'."
        )

    def _malformed(self, req: Request) -> ApiError:
        if req.path.startswith("/manage/"):
            return feed_error(400, "AF20002", "Invalid parameter type: request body. Expected type: JSON")
        return graph_error(
            req,
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of "
            "valid JSON format.",
        )

    def _wait(self, path: str) -> None:
        seconds = 0.0
        with self.lock:
            for delay in self._delays:
                if delay.remaining > 0 and path.startswith(delay.prefix):
                    delay.remaining -= 1
                    seconds = delay.seconds
                    break
        if seconds:
            self._stopping.wait(seconds)

    def _fault(self, req: Request, path: str) -> Reply | None:
        with self.lock:
            fault = next((f for f in self._faults if f.remaining > 0 and path.startswith(f.prefix)), None)
            if fault is None:
                return None
            if fault.skip > 0:
                fault.skip -= 1
                return None
            fault.remaining -= 1
        headers = {"Retry-After": str(fault.retry_after)} if fault.kind == "throttle" else {}
        if fault.body is not None:
            return Reply(fault.status, fault.body, headers)
        code, message = _FAULT_WORDS.get(fault.status, ("UnknownError", "The service failed to answer."))
        if fault.kind == "throttle" and fault.status == 429:
            code, message = (
                "TooManyRequests",
                "Too many requests, please retry after the interval in Retry-After.",
            )
        if path.startswith("/manage/"):
            feed_code = "AF429" if fault.status == 429 else f"AF{fault.status}00"
            return feed_error(fault.status, feed_code, message, **headers).reply
        if path.startswith("/graph/"):
            return graph_error(req, fault.status, code, message, **headers).reply
        aad = (
            "temporarily_unavailable"
            if fault.kind == "throttle" or fault.status >= 500
            else "invalid_request"
        )
        return aad_error(req, fault.status, aad, 90033, message, **headers).reply

    def _record(self, req: Request, reply: Reply, form: dict[str, str] | None, at: datetime) -> None:
        headers = dict(req.headers)
        if headers.get("authorization", "").lower().startswith("basic "):
            headers["authorization"] = "Basic ***"
        if form is not None:
            form = {k: ("***" if k in ("client_secret", "client_assertion") else v) for k, v in form.items()}
        entry = Recorded(
            req.method,
            req.path,
            dict(req.query),
            headers,
            req.json,
            reply.status,
            req.client_request_id,
            form,
            at,
            dict(reply.headers),
        )
        with self.lock:
            self.requests.append(entry)


_FAULT_WORDS = {
    400: ("BadRequest", "The request is invalid."),
    401: ("InvalidAuthenticationToken", "Access token validation failure."),
    403: ("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
    404: ("Request_ResourceNotFound", "The resource does not exist."),
    409: ("Conflict", "The request conflicts with the current state of the resource."),
    429: ("TooManyRequests", "Too many requests, please retry after the interval in Retry-After."),
    500: ("InternalServerError", "An internal server error occurred."),
    502: ("BadGateway", "The service is unreachable."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry later."),
    504: ("GatewayTimeout", "The service did not answer in time."),
}


# ----------------------------------------------------------------------------------------------- HTTP server


class _Server(ThreadingHTTPServer):
    """A threading HTTP server whose connections are wrapped in TLS in their own thread (a slow handshake
    does not hold up the accept loop)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], fake: FakeM365, context: ssl.SSLContext) -> None:
        self.fake = fake
        self.ssl_context = context
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(15)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a client that does not trust the CA, or went away
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a connection reset or closed mid-request: the client's doing, not a bug
        self.fake.internal_errors.append(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the fake's record is :attr:`FakeM365.requests`."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.fake.handle(self.command, self.path, headers, body)
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            if reply.body is not None:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (OSError, ssl.SSLError):
            self.close_connection = True  # the client gave up (a timeout provoked with delay())
