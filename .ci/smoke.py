"""Embedded-mode smoke: every navigation page answers 200 for a reader, and /healthz says 'embedded'."""

import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soc_console.settings")
sys.path.insert(0, os.getcwd())
django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from console.context_processors import NAVIGATION  # noqa: E402
from core.roles import READER  # noqa: E402

assert settings.EMBEDDED, "the smoke run must use the embedded default"
user, _ = get_user_model().objects.get_or_create(username="smoke-reader")
user.groups.set([Group.objects.get(name=READER)])
client = Client()
client.force_login(user)
failures = []
for label, name, _ in NAVIGATION:
    response = client.get(reverse(name))
    print(f"  {response.status_code} {label:<18} {reverse(name)}")
    if response.status_code != 200:
        failures.append(label)
health = client.get("/healthz").json()
print(f"  /healthz {health}")
if health.get("mode") != "embedded" or health.get("status") != "ok":
    failures.append("/healthz")
if failures:
    sys.exit(f"smoke failed: {failures}")
print("smoke: ok")
