"""Connectors for tests, registered through ``settings.CONNECTOR_KINDS`` (the network edge of a real platform
connector is what they stand in for). Counters are class-level and thread-safe, so concurrent tests can count
how many times an action was really applied."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from investigations.connectors import (
    BuiltinConnector,
    ConnectorResult,
    manual_step_for,
)
from investigations.exceptions import ConnectorError, TransientConnectorError


class CountingConnector(BuiltinConnector):
    """The built-in connector, counting applies (and pausing a little so concurrent callers overlap)."""

    applies = 0
    _lock = threading.Lock()

    @classmethod
    def reset(cls) -> None:
        with cls._lock:
            cls.applies = 0

    def apply(self, action):
        with type(self)._lock:
            type(self).applies += 1
        time.sleep(0.2)
        return super().apply(action)


class ManualConnector(BuiltinConnector):
    """A platform with no API for anything: every apply is a manual step."""

    def apply(self, action):
        return ConnectorResult.manual_step_required(manual_step_for(action))


class FlakyConnector(BuiltinConnector):
    """Fails with a transient error ``failures`` times, then behaves like the built-in connector."""

    failures = 2
    calls = 0

    def apply(self, action):
        type(self).calls += 1
        if type(self).calls <= type(self).failures:
            raise TransientConnectorError("HTTP 503 from the platform")
        return super().apply(action)


class BrokenConnector(BuiltinConnector):
    def apply(self, action):
        raise ConnectorError("The platform refused the change (403: insufficient privileges).")


class SlowConnector(BuiltinConnector):
    """Makes the change, signals it (a marker file named by ``SLOW_CONNECTOR_MARKER``), then hangs inside the
    transaction: a worker killed now must leave nothing behind."""

    def apply(self, action):
        result = super().apply(action)
        Path(os.environ["SLOW_CONNECTOR_MARKER"]).write_text(str(action.pk))
        time.sleep(120)
        return result


class UnreachableForUndoConnector(BuiltinConnector):
    """Applies like the built-in connector; every undo times out."""

    undo_calls = 0

    def undo(self, action, prior_state):
        type(self).undo_calls += 1
        raise TransientConnectorError("timed out talking to the platform")
