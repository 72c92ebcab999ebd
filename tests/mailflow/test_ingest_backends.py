"""The ingest path (compiled validation, staged ledger, COPY) on both backends: the same scenario
(``ingest_scenario.py``) on PostgreSQL, in-process, and on the embedded SQLite database, in a subprocess,
gives the same answers — every error of the contract with the same message and index, the same counts,
the same stored rows and content hashes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from .ingest_scenario import run

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import django, json, sys; django.setup();"
    "from django.core.management import call_command; call_command('migrate', verbosity=0);"
    "from tests.mailflow.ingest_scenario import run; sys.stdout.write('RESULT' + json.dumps(run()))"
)


def on_sqlite(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL")}
    env |= {
        "SQLITE_PATH": str(tmp_path / "probe.sqlite3"),
        "DEBUG": "true",
        "DJANGO_SETTINGS_MODULE": "soc_console.settings",
    }
    done = subprocess.run(  # noqa: S603 - our interpreter and a fixed script
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.rpartition("RESULT")[2])


@pytest.mark.django_db
def test_ingest_answers_the_same_on_postgresql_and_sqlite(tmp_path):
    assert connection.vendor == "postgresql"
    postgres = json.loads(json.dumps(run()))
    sqlite = on_sqlite(tmp_path)
    for key in postgres:
        if key in ("strict", "lenient"):  # an out-of-range time names "now": compare the rest of its message
            for answer in (postgres, sqlite):
                for error in answer[key][0]:
                    error["error"] = error["error"].split(" seconds from now")[0]
        assert sqlite[key] == postgres[key], key
    strict_errors = postgres["strict"][0]
    assert len({e["index"] for e in strict_errors}) == 22  # every invalid event, nothing else
    assert postgres["strict"][3] == 0  # strict: nothing stored
    assert postgres["lenient"][1]["accepted"] == 8 and postgres["lenient"][1]["duplicates"] == 1
    # m-1 with other content (against the ledger), then the stored m-1 (against that first one, in-batch)
    assert postgres["again"]["conflicts"] == 2 and postgres["again"]["duplicates"] == 2
    assert postgres["import"] == "30 accepted, 1 duplicate, 1 conflicting"
    assert "2 error(s)" in postgres["refused"]
    assert postgres["m-1"][1:4] == [1, 1, ["partner.example.net"]]
    # Alice's minute counters: m-1 (1 internal, 1 external) at 09:00, m-2, m-3, then the 30 imported ones
    # one a minute; the merged phish verdict of m-3 counts as bad in its minute.
    minutes = {m[1]: m[2:] for m in postgres["minutes"] if m[0] == "alice@example.com"}
    first = min(minutes)
    assert minutes[first] == [1 + 1, 1, 2 + 1, 0]  # m-1, and i-0 at the same minute
    assert minutes[first + 2] == [2, 0, 2, 1]  # m-3 (phish after the merge) and i-2
    assert postgres["merged"] == 1
