import pytest
import time_machine

from investigations.models import Investigation

from .builders import ALICE, NOW, OUTSIDE, Telemetry, hours_ago, investigation_of


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


@pytest.fixture
def forwarding_case(telemetry, run_on_commit):
    """Alice's mailbox forwards outside: alerted and investigated, with "Turn off forwarding" proposed."""
    telemetry.mailbox(ALICE)
    telemetry.forwarding(ALICE, f"drop@{OUTSIDE}", at=hours_ago(3))
    with run_on_commit():
        telemetry.ingest_and_detect()
    investigation = investigation_of(ALICE)
    assert investigation.status == Investigation.Status.PENDING_ACTION
    return investigation
