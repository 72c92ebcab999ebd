"""Every app of this project loads through its own config, so its audit kinds and tasks are registered in
every process (a second AppConfig subclass in an ``apps.py`` would make Django fall back to a plain one)."""

from __future__ import annotations

import sys

import pytest
from django.apps import apps
from django.conf import settings

from core.appconfig import DomainAppConfig

DOMAIN_APPS = [label for label in settings.PROJECT_APPS if label != "console"]


@pytest.mark.parametrize("label", DOMAIN_APPS)
def test_the_app_runs_its_own_config_and_registers_its_modules(label):
    config = apps.get_app_config(label)
    assert isinstance(config, DomainAppConfig)
    assert type(config) is not DomainAppConfig
    for module in config.registers:
        assert f"{label}.{module}" in sys.modules
