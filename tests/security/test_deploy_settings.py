"""Row 10 of issue 15: the production defaults pass ``manage.py check --deploy --fail-level WARNING`` with
``DEBUG=false`` (HSTS, HTTPS redirect, secure cookies, an SMTP mailer), sessions last 8 hours, and each of
these comes from the environment. Run in a subprocess: settings are read once, from the environment."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

from django.conf import settings

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "soc.example.com",
    "DATABASE_URL": "postgres://soc@db.internal:5432/soc",  # never connected to by the check
    "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
}
# What the test runner (Makefile) sets for itself and a deployment would not.
RUNNER_ONLY = {
    "SECURE_SSL_REDIRECT",
    "STATIC_MANIFEST",
    "EMAIL_HOST",
    "EMAIL_PORT",
    "WEBHOOK_ALLOW_PRIVATE_TARGETS",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
}


def production_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in RUNNER_ONLY and k not in PRODUCTION}
    env.update(PRODUCTION, **overrides)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, *args], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_defaults_pass_the_deploy_check_at_warning_level():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no issues" in result.stdout


def test_the_deploy_check_fails_when_hsts_is_switched_off():
    """The check above can fail: turning one protection off makes it fail."""
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(SECURE_HSTS_SECONDS="0")
    )
    assert result.returncode != 0 and "security.W004" in result.stderr


PRINT_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({
    "hsts": s.SECURE_HSTS_SECONDS, "subdomains": s.SECURE_HSTS_INCLUDE_SUBDOMAINS,
    "ssl": s.SECURE_SSL_REDIRECT,
    "session_secure": s.SESSION_COOKIE_SECURE, "csrf_secure": s.CSRF_COOKIE_SECURE,
    "session_age": s.SESSION_COOKIE_AGE, "mail": s.MAILERS["default"],
    "exempt": s.SECURE_REDIRECT_EXEMPT,
}))
"""


def settings_with(**env: str) -> dict:
    result = run(
        ["-c", PRINT_SETTINGS], {**production_env(**env), "DJANGO_SETTINGS_MODULE": "soc_console.settings"}
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_defaults():
    values = settings_with()
    assert values["hsts"] == 31_536_000 and values["subdomains"] and values["ssl"]
    assert values["session_secure"] and values["csrf_secure"]
    assert values["session_age"] == 8 * 3600
    assert values["mail"]["BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert values["mail"]["OPTIONS"]["host"] == "localhost"
    assert values["exempt"] == ["^healthz$"]


def test_each_setting_comes_from_the_environment():
    values = settings_with(
        SECURE_HSTS_SECONDS="3600",
        SESSION_COOKIE_AGE="1800",
        SECURE_SSL_REDIRECT="false",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="false",
        EMAIL_HOST="smtp.example.com",
    )
    assert (values["hsts"], values["session_age"], values["ssl"], values["subdomains"]) == (
        3600,
        1800,
        False,
        False,
    )
    assert values["mail"]["OPTIONS"]["host"] == "smtp.example.com"


def test_the_embedded_demo_keeps_plain_http_and_the_console_mailer():
    env = {
        k: v for k, v in production_env().items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "DEBUG"}
    }
    result = run(["-c", PRINT_SETTINGS], {**env, "DJANGO_SETTINGS_MODULE": "soc_console.settings"})
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["hsts"] == 0 and not values["ssl"] and not values["session_secure"]
    assert values["mail"]["BACKEND"] == "django.core.mail.backends.console.EmailBackend"
