"""Shared fixtures: named personas (one per role), the default tenant, and the service checks.

The suite runs against real PostgreSQL and Redis (``make test`` points at them); a missing service stops the run
with an error instead of skipping or falling back to SQLite.
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
        pytest.exit("The suite needs Redis (CELERY_BROKER_URL / REDIS_URL). Run it with `make test`.", returncode=3)
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.exit(f"Redis at {settings.REDIS_URL} is unreachable: {exc}", returncode=3)


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


@pytest.fixture
def reader(db):
    return make_user("rita.reader", READER)


@pytest.fixture
def operator(db):
    return make_user("otto.operator", OPERATOR)


@pytest.fixture
def administrator(db):
    return make_user("ada.admin", ADMINISTRATOR)


@pytest.fixture
def nobody(db):
    """Signed in, but in no role."""
    return make_user("nora.norole", None)


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def reader_client(reader):
    return _client_for(reader)


@pytest.fixture
def operator_client(operator):
    return _client_for(operator)


@pytest.fixture
def administrator_client(administrator):
    return _client_for(administrator)


@pytest.fixture
def nobody_client(nobody):
    return _client_for(nobody)
