"""Fixtures of the self-hosted mail tests: a tenant connected to its mail servers (secrets in clear for the
test's requests), an accepted domain with two mailboxes, a clean Redis keyspace. The real servers are in
:mod:`tests.mailstack.servers`."""

from __future__ import annotations

import base64
import os

import pytest

from tests.builders import redis_without

DOMAIN = "example.test"


def basic(secret: str) -> str:
    return "Basic " + base64.b64encode(f"server:{secret}".encode()).decode()


@pytest.fixture
def mail_redis():
    """The test Redis db without mailstack, disabled-account or restriction keys, before and after."""
    with redis_without("soc:mailstack:*", "soc:disabled:*", "soc:restricted:*", "soc:policy:*") as client:
        yield client


@pytest.fixture
def mailboxes(tenant):
    from mailboxes.models import AcceptedDomain, Mailbox

    AcceptedDomain.objects.get_or_create(tenant=tenant, domain=DOMAIN)
    return {
        name: Mailbox.objects.get_or_create(tenant=tenant, address=f"{name}@{DOMAIN}")[0]
        for name in ("ann", "bob")
    }


@pytest.fixture
def connected(tenant, administrator, mailboxes, mail_redis, settings):
    """The default tenant connected (kind ``mailstack``); ``.secrets`` holds the two secrets in clear."""
    from mailstack.endpoints import forget_configs
    from mailstack.services import connect_mail_servers

    settings.MAILSTACK_DOVEADM_API_KEY = "test-api-key"
    connection, secrets = connect_mail_servers(
        tenant, actor=administrator, doveadm_url="http://127.0.0.1:10880/doveadm/v1"
    )
    connection.secrets = secrets
    yield connection
    forget_configs()


# A Celery worker started by the session (``real_worker``) takes its settings from the environment: it must
# reach the test Dovecot's doveadm API too.
os.environ.setdefault("MAILSTACK_DOVEADM_API_KEY", "test-api-key")


class ServerGate:
    """Stands between the mail servers and the live server: their calls (``/hooks/mailstack/…``) reach the
    console only while a test holds the gate open, and the gate closes only once no such call is in flight.

    Dovecot reports a login to the policy endpoint after the login has been answered, and Rspamd exports after
    the scan: without the gate such a call can land after the test, while its database is being flushed (a
    deadlock that leaves the rows in place for the next test) or while database access is blocked."""

    PREFIX = "/hooks/mailstack/"

    def __init__(self, app):
        import threading

        self.app = app
        self.open = False
        self.in_flight = 0
        self.changed = threading.Condition()

    def __call__(self, environ, start_response):
        if not environ.get("PATH_INFO", "").startswith(self.PREFIX):
            return self.app(environ, start_response)
        with self.changed:
            if not self.open:
                start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
                return [b"between tests\n"]
            self.in_flight += 1
        try:
            # The body is produced and the response closed here (Django's request_finished closes the thread's
            # database connection), so the call's database work is over when it leaves the gate.
            response = self.app(environ, start_response)
            try:
                return list(response)
            finally:
                if hasattr(response, "close"):
                    response.close()
        finally:
            with self.changed:
                self.in_flight -= 1
                self.changed.notify_all()

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new calls and wait for those in flight to finish."""
        with self.changed:
            self.open = False
            if not self.changed.wait_for(lambda: self.in_flight == 0, timeout=timeout):
                running = self.in_flight
                raise AssertionError(f"{running} mail-server call(s) still running after {timeout:.0f} s")


@pytest.fixture(scope="session")
def mail_stack(live_server):
    """Dovecot, Redis, Rspamd, Postfix and an SMTP sink for the session, calling the console at
    ``live_server`` and the policy service at ``mail_stack.policy_port``."""
    from pathlib import Path

    from django.conf import settings
    from django.db import connections

    from tests.enforcement.postfix import free_port

    from .servers import MailStack

    # The servers' requests reach the live server on threads of their own: their database connections must
    # close with each request, or the test database cannot be dropped at the end of the session.
    database = connections.settings["default"]
    max_age, database["CONN_MAX_AGE"] = database.get("CONN_MAX_AGE", 0), 0
    port = live_server.url.rsplit(":", 1)[1]
    httpd = live_server.thread.httpd
    gate = ServerGate(httpd.get_app())
    httpd.set_app(gate)
    stack = MailStack(
        f"http://127.0.0.1:{port}", free_port(), Path(settings.BASE_DIR, "var", "rspamd-hs-cache")
    )
    stack.gate = gate
    try:
        stack.start()
    except Exception as exc:  # noqa: BLE001 - any start failure fails the test with the servers' logs
        logs = "\n".join(stack.log(name)[-3000:] for name in ("dovecot", "rspamd", "postfix"))
        stack.stop()
        pytest.fail(f"The mail servers did not start: {exc}\n{logs}")
    yield stack
    stack.stop()
    httpd.set_app(gate.app)
    database["CONN_MAX_AGE"] = max_age


@pytest.fixture
def stack(request, mail_stack, transactional_db, tenant, mailboxes, mail_redis, settings):
    """The servers with empty mailboxes, and the tenant connected with the secrets they were given."""
    from mailboxes.models import Mailbox
    from mailstack.endpoints import forget_configs, hash_secret
    from mailstack.models import MailstackConnection
    from mailstack.services import connect_mail_servers

    from .servers import DOVEADM_API_KEY, DOVEADM_PORT, EXPORTER_SECRET, POLICY_SECRET

    mail_stack.reset()
    settings.MAILSTACK_DOVEADM_API_KEY = DOVEADM_API_KEY
    Mailbox.objects.get_or_create(tenant=tenant, address=f"carol@{DOMAIN}")
    connection, _ = connect_mail_servers(
        tenant, actor=None, doveadm_url=f"http://127.0.0.1:{DOVEADM_PORT}/doveadm/v1"
    )
    MailstackConnection.objects.filter(pk=connection.pk).update(
        exporter_secret_hash=hash_secret(EXPORTER_SECRET), policy_secret_hash=hash_secret(POLICY_SECRET)
    )
    forget_configs()
    mail_stack.connection = MailstackConnection.objects.get(pk=connection.pk)
    with mail_stack.gate.changed:
        mail_stack.gate.open = True
    yield mail_stack
    mail_stack.gate.close()
    if "real_worker" in request.fixturenames:
        # A call that got through before the gate closed may have scheduled a drain on the worker (after a
        # countdown): it must run before the flush, or its queries and the TRUNCATE deadlock.
        from soc_console.celery import app
        from tests.conftest import wait_until_worker_idle

        wait_until_worker_idle(app)
    forget_configs()
