import pytest
import time_machine

from .builders import NOW, Telemetry


@pytest.fixture
def clock():
    """Travel to NOW (a Tuesday noon, UTC) with the clock ticking, so durations are real."""
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


@pytest.fixture
def telemetry(tenant, clock):
    return Telemetry(tenant)


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Run what the services enqueue on commit (tasks run in-process in these tests), as a commit would."""

    def capture():
        return django_capture_on_commit_callbacks(execute=True)

    return capture
