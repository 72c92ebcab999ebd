"""`make bench`: run every benchmark in bench/; each prints its figures beside a reference measured in the
same run.

Each module ``bench/<name>_bench.py`` exposes ``main() -> None`` and prints its own figures. ``make bench
BENCH=ingest`` runs one, ``BENCH=ingest,detection,retention`` several (each name a prefix), in that order.
"""

import importlib
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soc_console.settings")


def main() -> int:
    wanted = [w.strip() for w in os.environ.get("BENCH", "").split(",") if w.strip()]
    names = sorted(p.stem for p in HERE.glob("*_bench.py"))
    if wanted:
        names = [n for w in wanted for n in names if n.startswith(w)]
    if not names:
        print(f"no benchmark matches {wanted!r}", file=sys.stderr)
        return 2
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
