"""The old name of :mod:`investigations.action_services` (the remediation actions' services), kept so that
``from investigations import actions`` and ``investigations.actions.X`` keep working: this module *is* that
one (the same object in ``sys.modules``), so a monkeypatch through either name changes both."""

import sys

from . import action_services

sys.modules[__name__] = action_services
