"""Shared fixtures: named personas (one per role), the default tenant, and the service checks.

The suite runs against real PostgreSQL and Redis (``make test`` points at them); a missing service
stops the run with an error instead of skipping or falling back to SQLite.
"""

from __future__ import annotations

import os

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from core.roles import ADMINISTRATOR, OPERATOR, READER

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright + live_server teardown


def pytest_configure(config):
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine and not os.environ.get("SOC_ALLOW_SQLITE_TESTS"):
        pytest.exit(
            f"The suite needs PostgreSQL (DATABASE_URL); got {engine}. Run it with `make test`.", returncode=3
        )
    if not settings.REDIS_URL:
        pytest.exit(
            "The suite needs Redis (CELERY_BROKER_URL / REDIS_URL). Run it with `make test`.", returncode=3
        )
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.exit(f"Redis at {settings.REDIS_URL} is unreachable: {exc}", returncode=3)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _audit_actions_strict(settings):
    """Every audit action written anywhere in the suite must be declared with its feed kind (core.feed)."""
    settings.AUDIT_ACTIONS_STRICT = True


@pytest.fixture(autouse=True)
def _sessions_outlive_time_travel(settings):
    """Production sessions last 8 hours; tests sign in once and then travel days ahead with time-machine."""
    settings.SESSION_COOKIE_AGE = 30 * 24 * 3600


@pytest.fixture(autouse=True)
def _tasks_in_process(settings):
    """Unit and service tests run enqueued tasks in-process on commit; the worker suite switches this off."""
    from soc_console.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def tenant(db):
    from core.models import Tenant

    return Tenant.objects.default()


@pytest.fixture
def other_tenant(db):
    from core.models import Tenant

    return Tenant.objects.create(name="Other organisation", slug="other")


def make_user(username: str, role: str | None):
    from django.contrib.auth import get_user_model

    from core.roles import sync_roles

    if not Group.objects.filter(name=READER).exists():
        sync_roles()
    user = get_user_model().objects.create_user(username=username, password="correct-horse-battery")
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _persona(name: str, username: str, role: str | None):
    """The fixtures of one persona: ``<name>`` (the user, with ``role``) and ``<name>_client`` (signed in)."""

    @pytest.fixture(name=name)
    def user(db):
        return make_user(username, role)

    @pytest.fixture(name=f"{name}_client")
    def client(request):
        return _client_for(request.getfixturevalue(name))

    return user, client


# The named personas, one per role, and ``nobody``: signed in, but in no role.
reader, reader_client = _persona("reader", "rita.reader", READER)
operator, operator_client = _persona("operator", "otto.operator", OPERATOR)
administrator, administrator_client = _persona("administrator", "ada.admin", ADMINISTRATOR)
nobody, nobody_client = _persona("nobody", "nora.norole", None)


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    """A real ``celery worker`` subprocess on every queue, pointed at the test database and the test Redis db.

    Tests using it need ``@pytest.mark.django_db(transaction=True)`` so that their writes are committed and
    ``delay_on_commit`` actually sends. Poll for effects with :func:`wait_for`.
    """
    from pathlib import Path

    from django.conf import settings

    from soc_console.worker_process import WorkerDidNotStart, worker_process

    log = Path(settings.BASE_DIR, "var", f"test-worker-{os.getpid()}.log")
    try:
        with worker_process(worker_database_url(), log, name="test-worker@%h", timeout=30) as process:
            yield process
    except WorkerDidNotStart as exc:
        pytest.fail(str(exc))
    log.unlink(missing_ok=True)  # one per test process: keep var/ from filling up


def worker_database_url() -> str:
    """The URL of the test database (what a worker process started by a test must use)."""
    from django.db import connection

    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def real_worker(celery_worker_process):
    """Send tasks to the real worker instead of running them in-process."""
    from soc_console.celery import app

    app.conf.task_always_eager = False
    yield celery_worker_process
    # A test's assertions can pass while the chain it started is still running (alert → restriction →
    # investigation runs ...). Let the worker finish before the database is flushed, or the flush's TRUNCATE
    # and the worker's queries deadlock, and the next test starts with the previous one's tasks.
    wait_until_worker_idle(app)
    app.conf.task_always_eager = True


def wait_until_worker_idle(app, timeout: float = 30.0) -> None:
    """Poll until no queue holds a message and the worker runs, holds or has scheduled none, twice in a
    row."""
    import time

    from django.conf import settings

    deadline = time.monotonic() + timeout
    quiet = 0
    with app.connection_for_write() as conn:
        redis_client = conn.default_channel.client
        while time.monotonic() < deadline and quiet < 2:
            queued = sum(redis_client.llen(queue) for queue in settings.TASK_QUEUES)
            inspect = app.control.inspect(timeout=1.0, limit=1)  # one worker: answer on its reply
            # scheduled: tasks sent with a countdown (a debounced drain, a retry), held until due
            busy = [
                *(inspect.active() or {}).values(),
                *(inspect.reserved() or {}).values(),
                *(inspect.scheduled() or {}).values(),
            ]
            quiet = quiet + 1 if queued == 0 and not any(busy) else 0
            time.sleep(0.1)


def wait_for(predicate, *, timeout: float = 30.0, interval: float = 0.1, message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"Timed out after {timeout}s waiting for {message}")
