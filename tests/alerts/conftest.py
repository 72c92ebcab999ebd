"""Fixtures of the alert tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import time_machine

from .builders import NOW


@pytest.fixture
def frozen_at_now() -> Iterator[None]:
    """The detector tests' clock, stopped at ``builders.NOW`` (mark a module with
    ``pytest.mark.usefixtures("frozen_at_now")``)."""
    with time_machine.travel(NOW, tick=False):
        yield
