"""The HTTP side of the Microsoft 365 connector: app-only tokens through MSAL, Microsoft Graph and the Office
365 Management Activity API through ``requests``, behaving as a good API citizen.

- **Tokens**: one MSAL confidential client per connection and credential, kept for the process, so its token
  cache is reused and refreshed by MSAL before expiry; a 401 from an API (a token revoked or expired early)
  drops the cached token and retries once with a new one.
- **Throttling**: 429 and 503 are retried after the ``Retry-After`` the service sent (capped by
  ``M365_MAX_RETRY_AFTER_SECONDS``; longer waits become a :class:`Throttled` error, so a Celery task retries
  later from its saved cursor instead of holding a worker), at most ``M365_MAX_RETRIES`` times.
- **Timeouts**: every request has ``M365_TIMEOUT_SECONDS``; a timeout or connection error is retried with
  backoff, then raised as a transient error.
- **Paging**: :meth:`M365Client.pages` follows ``@odata.nextLink``.
- **Evidence**: every call (method, URL without query, status, ``request-id``, duration, error code) is kept
  in :attr:`M365Client.calls`, for an action's result and a pull's run record. Secrets and tokens never are.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msal
import requests
from django.conf import settings
from django.utils import timezone

from investigations.exceptions import ConnectorError, TransientConnectorError

from . import crypto
from .exceptions import M365Error
from .models import M365Connection
from .permissions import GRAPH, MANAGEMENT

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 503, 504})
# How much of an error body a call record keeps.
EXCERPT_CHARS = 500


class GraphError(ConnectorError):
    """Microsoft refused a request for good (400, 403, 404 …): retrying will not help."""

    def __init__(self, message: str, *, status: int, code: str = "", request_id: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.request_id = request_id


class Throttled(TransientConnectorError):
    """Microsoft kept throttling (or asked to wait longer than we hold a worker for)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unreachable(TransientConnectorError):
    """A timeout, a connection failure or a 5xx that outlasted the retries."""


@dataclass(frozen=True)
class Call:
    """One HTTP exchange with Microsoft, as recorded for an action's result or a pull run."""

    method: str
    url: str
    status: int | None
    request_id: str
    client_request_id: str
    duration_ms: int
    at: str
    error: str = ""
    response: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = {
            "method": self.method,
            "url": self.url,
            "status": self.status,
            "request_id": self.request_id,
            "client_request_id": self.client_request_id,
            "duration_ms": self.duration_ms,
            "at": self.at,
        }
        if self.error:
            data["error"] = self.error
        if self.response:
            data["response"] = self.response
        return data


_apps: dict[tuple, msal.ConfidentialClientApplication] = {}
_apps_lock = threading.Lock()


def _credential(connection: M365Connection) -> str | dict[str, str]:
    secret = crypto.decrypt(connection.credential_ciphertext)
    if connection.credential_type == M365Connection.Credential.CERTIFICATE:
        return {"private_key": secret, "thumbprint": connection.certificate_thumbprint}
    return secret


class VerifyingSession(requests.Session):
    """A session that always verifies TLS against ``M365_CA_BUNDLE`` (when set): ``requests`` otherwise lets
    ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` override a session's ``verify``. MSAL gets one too.

    Every request also gets ``M365_TIMEOUT_SECONDS`` unless it sets its own: MSAL ignores its ``timeout=``
    argument once it is given an ``http_client``, so without this its token calls could hang for ever."""

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("verify", settings.M365_CA_BUNDLE or True)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = settings.M365_TIMEOUT_SECONDS
        return super().request(method, url, *args, **kwargs)


def msal_app(connection: M365Connection) -> msal.ConfidentialClientApplication:
    """The process-wide MSAL client of ``connection`` (a new one when its credential or ids changed)."""
    key = (
        connection.pk,
        connection.directory_id,
        connection.client_id,
        connection.credential_set_at.isoformat(),
        settings.M365_AUTHORITY_HOST,
    )
    with _apps_lock:
        app = _apps.get(key)
        if app is None:
            app = msal.ConfidentialClientApplication(
                connection.client_id,
                authority=f"{settings.M365_AUTHORITY_HOST.rstrip('/')}/{connection.directory_id}",
                client_credential=_credential(connection),
                instance_discovery=False,
                http_client=VerifyingSession(),
            )
            _apps[key] = app
        return app


def forget_apps() -> None:
    """Drop every cached MSAL client (tests, credential rotation)."""
    with _apps_lock:
        _apps.clear()


def token_claims(access_token: str) -> dict[str, Any]:
    """The claims of an access token (read, not verified: we just got it from the authority over TLS and only
    use them to report missing permissions and to learn the tenant's GUID)."""
    try:
        payload = access_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise M365Error("The access token Microsoft issued cannot be read.") from exc
    if not isinstance(claims, dict):
        raise M365Error("The access token Microsoft issued cannot be read.")
    return claims


def token_roles(access_token: str) -> set[str]:
    """The application roles in an access token's ``roles`` claim."""
    return set(token_claims(access_token).get("roles") or [])


class NotRetried(Unreachable):
    """A request that changes something (a message move) timed out: Microsoft may have carried it out, so it
    is not sent again blindly; the caller reads the state to find out."""


def _error_of(response: requests.Response) -> tuple[str, str]:
    """(code, message) of a Graph / Management API error body, as far as it has one."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code", "")), str(error.get("message", ""))[:300]
    if isinstance(error, str):
        return error, str(body.get("error_description", ""))[:300]
    return "", ""


def _retry_after(response: requests.Response, attempt: int) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return float(min(2**attempt, 30))


def _refusal(
    response: requests.Response, code: str, message: str, method: str, url: str
) -> M365Error | GraphError:
    """The error a refused request raises: a credential problem for a 401, else a :class:`GraphError`."""
    if response.status_code == 401:
        return M365Error(
            f"Microsoft rejected the app's token for {_path(url)} ({code or 'HTTP 401'}): {message}"
        )
    return GraphError(
        f"{method} {_path(url)}: HTTP {response.status_code} {code}: {message}".strip(),
        status=response.status_code,
        code=code,
        request_id=response.headers.get("request-id", ""),
    )


class M365Client:
    """One connection's HTTP client. Not shared between threads; cheap to create per task."""

    def __init__(self, connection: M365Connection, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.connection = connection
        self.sleep = sleep
        self.session = VerifyingSession()
        self.session.headers["User-Agent"] = "soc-console-m365/1"
        self.calls: list[Call] = []
        self.throttled = 0
        self._tokens: dict[str, str] = {}

    # -- URLs

    def graph(self, path: str, version: str = "v1.0") -> str:
        return f"{settings.M365_GRAPH_URL.rstrip('/')}/{version}{path}"

    def management(self, path: str) -> str:
        """A Management Activity API URL. Its tenant segment must be the directory's GUID (a domain is refused
        with AF20013), so it comes from the ``tid`` claim of the app's token, whatever the connection was
        registered with."""
        base = settings.M365_MANAGEMENT_URL.rstrip("/")
        return f"{base}/api/v1.0/{self.tenant_guid()}/activity/feed{path}"

    def tenant_guid(self) -> str:
        """The Entra ID tenant's GUID, from the ``tid`` claim of the Management API token."""
        tid = str(token_claims(self.token(MANAGEMENT)).get("tid") or "")
        if not tid:
            raise M365Error("The access token Microsoft issued names no tenant (tid).")
        return tid

    def management_params(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """``params`` plus ``PublisherIdentifier`` (the tenant GUID), which gives the app its own quota of
        Management API requests instead of sharing the tenant's."""
        return {**(params or {}), "PublisherIdentifier": self.tenant_guid()}

    # -- tokens

    def token(self, api: str = GRAPH, *, fresh: bool = False) -> str:
        """An app-only access token for ``api`` (GRAPH or MANAGEMENT), from MSAL's cache when still valid."""
        if not fresh and api in self._tokens:
            return self._tokens[api]
        scopes = [f"{api}/.default"]
        try:
            # Building the MSAL client already asks the authority about the directory.
            app = msal_app(self.connection)
            if fresh:
                for entry in list(app.token_cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                    app.token_cache.remove_at(entry)
            result = app.acquire_token_for_client(scopes=scopes)
        except requests.RequestException as exc:
            name = type(exc).__name__
            raise Unreachable(f"The Microsoft identity platform is unreachable: {name}.") from exc
        except ValueError as exc:  # MSAL's authority validation (bad directory id, unreachable discovery)
            raise M365Error(f"The sign-in authority refused the directory: {exc}") from exc
        if "access_token" not in result:
            description = (result.get("error_description") or "").splitlines()[0:1]
            raise M365Error(
                f"Microsoft refused the app's sign-in ({result.get('error', 'error')}): "
                f"{description[0] if description else 'no description'}"
            )
        self._tokens[api] = result["access_token"]
        return result["access_token"]

    def roles(self, api: str) -> set[str]:
        return token_roles(self.token(api))

    # -- requests

    def request(
        self,
        method: str,
        url: str,
        *,
        api: str = GRAPH,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        idempotent: bool | None = None,
    ) -> requests.Response:
        """Send one request, honouring throttling, refreshing an expired token once, retrying timeouts.

        A request that is not idempotent (a POST, unless ``idempotent=True`` says repeating it is harmless)
        is not sent again after a timeout or a 5xx that may have come after the work was done: that raises
        :class:`NotRetried` and the caller reads the state. A 429 or a 401 is retried (nothing was done).

        Returns a 2xx response; raises :class:`GraphError` for a refusal, :class:`Throttled` /
        :class:`Unreachable` for what a later retry may fix, :class:`M365Error` for a credential problem.
        """
        if idempotent is None:
            idempotent = method.upper() != "POST"
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            client_request_id = str(uuid.uuid4())
            headers = {
                "Authorization": f"Bearer {self.token(api)}",
                "client-request-id": client_request_id,
                "return-client-request-id": "true",
                "Accept": "application/json",
            }
            started = time.monotonic()
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    headers=headers,
                    timeout=settings.M365_TIMEOUT_SECONDS,
                )
            except (requests.Timeout, requests.ConnectionError) as exc:
                self._record(method, url, None, "", client_request_id, started, type(exc).__name__)
                self._wait_after_no_answer(exc, method, url, attempt=attempt, idempotent=idempotent)
                continue
            code, message = ("", "") if response.ok else _error_of(response)
            self._record(method, url, response, code or message, client_request_id, started)
            if response.ok:
                return response
            if response.status_code == 401 and not refreshed:
                # A token revoked or expired before MSAL expected: get a new one, once.
                refreshed = True
                self._tokens.pop(api, None)
                self.token(api, fresh=True)
                continue
            if response.status_code in RETRYABLE_STATUSES or response.status_code >= 500:
                self.sleep(
                    self._retry_wait(response, code, method, url, attempt=attempt, idempotent=idempotent)
                )
                continue
            raise _refusal(response, code, message, method, url)

    def _wait_after_no_answer(
        self, exc: requests.RequestException, method: str, url: str, *, attempt: int, idempotent: bool
    ) -> None:
        """Sleep before sending again a request that got no answer, or raise when it must not be sent again
        (a change Microsoft may have carried out) or has been tried enough."""
        if not idempotent and not isinstance(exc, requests.ConnectTimeout):
            raise NotRetried(
                f"{method} {_path(url)} got no answer ({type(exc).__name__}); not sent again, as "
                "Microsoft may have carried it out."
            ) from exc
        if attempt > settings.M365_MAX_RETRIES:
            raise Unreachable(f"{method} {_path(url)} failed {attempt} times: {type(exc).__name__}.") from exc
        self.sleep(min(2 ** (attempt - 1), 30))

    def _retry_wait(
        self, response: requests.Response, code: str, method: str, url: str, *, attempt: int, idempotent: bool
    ) -> float:
        """How long to wait before retrying a throttled or failed (5xx) request; raises when it must not be
        sent again or has waited enough."""
        if not idempotent and response.status_code != 429:
            raise NotRetried(
                f"{method} {_path(url)}: HTTP {response.status_code} {code}; not sent again, as "
                "Microsoft may have carried it out."
            )
        wait = _retry_after(response, attempt)
        if response.status_code in (429, 503):
            self.throttled += 1
        if attempt > settings.M365_MAX_RETRIES or wait > settings.M365_MAX_RETRY_AFTER_SECONDS:
            what = f"{method} {_path(url)}: HTTP {response.status_code} {code}"
            what += f" after {attempt} attempt(s)"
            if response.status_code in (429, 503):
                raise Throttled(f"{what}; Microsoft asked to wait {wait:.0f} s.", wait)
            raise Unreachable(f"{what}.")
        logger.info("m365: %s %s answered %s; retrying in %.1f s", method, _path(url), code, wait)
        return wait

    def get_json(self, url: str, *, api: str = GRAPH, params: dict[str, Any] | None = None) -> Any:
        if api == MANAGEMENT:
            params = self.management_params(params)
        response = self.request("GET", url, api=api, params=params)
        try:
            return response.json()
        except ValueError as exc:
            raise GraphError(
                f"GET {_path(url)} answered a body that is not JSON.", status=response.status_code
            ) from exc

    def pages(self, url: str, *, params: dict[str, Any] | None = None) -> Iterator[tuple[list[Any], str]]:
        """Graph collection pages as (items, URL of the next page or ""), following ``@odata.nextLink``
        (which already carries the query, so ``params`` apply to the first request only).

        The next page is read ahead in a background thread while the caller stores the current one, so
        Microsoft's latency and our database writes overlap. Only that thread uses the session meanwhile.
        """
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="m365-read-ahead") as reader:
            body = self._collection(url, params)
            while True:
                next_url = body.get("@odata.nextLink") or ""
                ahead = reader.submit(self._collection, next_url, None) if next_url else None
                try:
                    yield body["value"], next_url
                finally:
                    if ahead is not None and not ahead.done():
                        ahead.cancel()
                if ahead is None:
                    return
                body = ahead.result()

    def _collection(self, url: str, params: dict[str, Any] | None) -> dict[str, Any]:
        body = self.get_json(url, params=params)
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise GraphError(f"GET {_path(url)} answered no collection.", status=200)
        return body

    # -- evidence

    def _record(
        self,
        method: str,
        url: str,
        response: requests.Response | None,
        error: str,
        client_request_id: str,
        started: float,
        exc_name: str = "",
    ) -> None:
        excerpt = ""
        if response is not None and not response.ok:
            excerpt = response.text[:EXCERPT_CHARS]
        self.calls.append(
            Call(
                method=method,
                url=_path(url),
                status=response.status_code if response is not None else None,
                request_id=response.headers.get("request-id", "") if response is not None else "",
                client_request_id=client_request_id,
                duration_ms=round((time.monotonic() - started) * 1000),
                at=timezone.now().isoformat(),
                error=error or exc_name,
                response=excerpt,
            )
        )

    def calls_since(self, index: int) -> list[dict[str, Any]]:
        return [call.as_dict() for call in self.calls[index:]]


def _path(url: str) -> str:
    """A URL without its query (filters may hold addresses; tokens never travel in URLs)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


__all__ = [
    "GRAPH",
    "MANAGEMENT",
    "GraphError",
    "M365Client",
    "NotRetried",
    "Throttled",
    "Unreachable",
    "token_claims",
    "token_roles",
]
