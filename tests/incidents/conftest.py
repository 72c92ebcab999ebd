import pytest


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Run what the services enqueue on commit (tasks run in-process in these tests), as a commit would."""

    def capture():
        return django_capture_on_commit_callbacks(execute=True)

    return capture
