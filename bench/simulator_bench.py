"""Simulator benchmark: how fast ``simulate`` generates a tenant's telemetry (no database).

Generates ``BENCH_MAILBOXES`` (1,000) mailboxes over 7 days with 5 compromised users (seed 1), as the test
suite's largest simulation does, three times, and prints the best and worst wall time and events/s. The
reference in the same run is the same tenant with no compromised user (the baseline traffic alone).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soc_console.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret")

ROUNDS = 3


def _time(config) -> tuple[list[float], int]:
    from mailflow.simulator import simulate

    times, events = [], 0
    for _ in range(ROUNDS):
        started = time.perf_counter()
        events = len(simulate(config).events)
        times.append(time.perf_counter() - started)
    return times, events


def main() -> None:
    import django

    django.setup()
    from mailflow.simulator import SimulationConfig, default_end

    mailboxes = int(os.environ.get("BENCH_MAILBOXES", "1000"))
    end = default_end(datetime.now(UTC))
    for label, compromised in (("with 5 compromised", 5), ("baseline only (reference)", 0)):
        config = SimulationConfig(end=end, mailboxes=mailboxes, days=7, compromised=compromised, seed=1)
        times, events = _time(config)
        print(
            f"  {mailboxes:,} mailboxes x 7 days, {label}: {events:,} events; best {min(times):.2f} s "
            f"({events / min(times):,.0f} events/s), worst {max(times):.2f} s over {ROUNDS} rounds",
            flush=True,
        )


if __name__ == "__main__":
    main()
