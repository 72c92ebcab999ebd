"""`make screenshots`: the README's screenshots, from a simulated tenant in a throwaway embedded console.

Seeds a simulated tenant (``seed_demo``) into a SQLite database in a temporary directory (embedded mode: no
PostgreSQL, no Redis, tasks in-process), starts the development server on a free 127.0.0.1 port, signs in as
the administrator with Playwright driving Debian's Chromium (``/usr/bin/chromium``; never ``playwright
install``) and saves, at 1440x900, ``docs/dashboard.png``, ``docs/alerts.png``, ``docs/investigation.png``
and ``docs/investigation-graph.png`` (the compromised user with the most findings) and
``docs/restricted-users.png``; at phone size (390x844) ``docs/phone-dashboard.png``, ``docs/phone-alerts.png``
and ``docs/phone-investigation.png``. Nothing else is written outside the temporary
directory. ``SCREENSHOT_MAILBOXES`` / ``SCREENSHOT_DAYS`` / ``SCREENSHOT_COMPROMISED`` size the tenant.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
# The investigation worth showing: the one with the most findings, open actions first.
PICK_INVESTIGATION = """
from django.db.models import Count
from investigations.models import Investigation
best = Investigation.objects.annotate(n=Count("findings")).order_by("-n", "pk").first()
print(best.pk if best else "")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def embedded_env(database: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "SECRET_KEY", "DEBUG")
    }
    return {**env, "SQLITE_PATH": str(database), "DJANGO_SETTINGS_MODULE": "soc_console.settings"}


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(  # noqa: S603 - our own manage.py, fixed arguments
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode:
        raise SystemExit(f"manage.py {args[0]} failed:\n{result.stdout[-2000:]}{result.stderr[-4000:]}")
    return result.stdout


def wait_for_server(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the development server exited before it answered")
        try:
            urllib.request.urlopen(f"{url}/login/", timeout=2)  # noqa: S310 - our own 127.0.0.1 server
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"the development server did not answer at {url}")


def shoot(url: str, password: str, investigation: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    desktop = [
        ("/", DOCS / "dashboard.png"),
        ("/alerts/?status=open", DOCS / "alerts.png"),
        (f"/investigations/{investigation}/", DOCS / "investigation.png"),
        (f"/investigations/{investigation}/graph/", DOCS / "investigation-graph.png"),
        ("/restricted-users/", DOCS / "restricted-users.png"),
    ]
    phone = [
        ("/", DOCS / "phone-dashboard.png"),
        ("/alerts/?status=open", DOCS / "phone-alerts.png"),
        (f"/investigations/{investigation}/", DOCS / "phone-investigation.png"),
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for viewport, shots, mobile in ((VIEWPORT, desktop, False), (PHONE, phone, True)):
            context = browser.new_context(
                base_url=url, viewport=viewport, timezone_id="UTC", locale="en-GB", is_mobile=mobile
            )
            page = context.new_page()
            page.goto("/login/")
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(lambda current: "/login/" not in current)
            for path, target in shots:
                page.goto(path)
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(target))
            context.close()
        browser.close()
    return [target for _, target in (*desktop, *phone)]


def main() -> int:
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"Chromium is missing at {CHROMIUM}: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="soc-screenshots-") as tmp:
        env = embedded_env(Path(tmp) / "db.sqlite3")
        password = secrets.token_urlsafe(12)
        print("Seeding a simulated tenant (embedded mode, throwaway SQLite)...", flush=True)
        manage(env, "migrate", "--no-input")
        manage(
            env,
            "seed_demo",
            "--mailboxes",
            os.environ.get("SCREENSHOT_MAILBOXES", "200"),
            "--days",
            os.environ.get("SCREENSHOT_DAYS", "8"),
            "--compromised",
            os.environ.get("SCREENSHOT_COMPROMISED", "4"),
        )
        manage(env, "create_role_logins", "--password", password)
        output = manage(env, "shell", "--no-imports", "-c", PICK_INVESTIGATION).split()
        investigation = output[-1] if output else ""
        if not investigation.isdigit():
            raise SystemExit("the simulated tenant has no investigation to show")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(  # noqa: S603 - our own manage.py, fixed arguments
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_server(url, server)
            for path in shoot(url, password, investigation):
                print(f"saved {path.relative_to(ROOT)}")
        finally:
            server.terminate()
            server.wait(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
