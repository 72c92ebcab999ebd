"""How a webhook delivery travels: its signature and one POST to a checked address of its URL.

No database writes here: :func:`notifications.services.deliver_webhook` claims the delivery, calls
:func:`post_webhook` and records the outcome.
"""

from __future__ import annotations

import hashlib
import hmac

import urllib3
from django.conf import settings

from . import targets
from .models import WebhookDelivery


def signature(secret: str, body: bytes) -> str:
    """The ``X-SOC-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(delivery: WebhookDelivery) -> tuple[int | None, str]:
    """POST a delivery's body once to a checked address of its URL; returns (HTTP status or None, error).

    Raises :class:`~notifications.targets.TargetRefused` when the host is or resolves to an address webhooks
    may not reach. The checked addresses are tried in order until one accepts the connection; nothing else is
    ever connected to. A redirect is an answer, not a new destination: a signed POST is never replayed
    elsewhere.
    """
    target = targets.pin(delivery.endpoint.url)
    body = delivery.body.encode()
    headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": "soc-console-webhooks/1",
        "X-SOC-Signature": signature(delivery.endpoint.secret, body),
        "X-SOC-Delivery": str(delivery.delivery_id),
        "X-SOC-Event": delivery.kind,
    }
    error = ""
    for address in target.addresses:
        try:
            with _pool(target, address) as pool:
                response = pool.urlopen(
                    "POST", target.path, body=body, headers=headers, redirect=False, assert_same_host=False
                )
        except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            continue  # this address does not answer: the next checked one may
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status < 300:
            return response.status, ""
        return response.status, f"HTTP {response.status}"
    return None, error


def _pool(target: targets.Target, address: str) -> urllib3.HTTPConnectionPool:
    """A connection pool to exactly ``address``; for HTTPS, SNI and the certificate check name the host."""
    timeout = urllib3.Timeout(total=settings.WEBHOOK_TIMEOUT_SECONDS)
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address,
            target.port,
            timeout=timeout,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=settings.WEBHOOK_CA_BUNDLE or None,
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    return urllib3.HTTPConnectionPool(address, target.port, timeout=timeout, retries=False)
