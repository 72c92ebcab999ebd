"""``manage.py run_policy_server --listen HOST:PORT``: the Postfix policy service (DESIGN section 9)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from enforcement.server import PolicyServer
from enforcement.snapshot import parse_networks

logger = logging.getLogger("enforcement.server")


def host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise CommandError(f"Expected HOST:PORT, got {value!r}.")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - an explicit ":PORT" means every address


class Command(BaseCommand):
    help = "Run the Postfix policy service: refuse restricted senders and enforce the sending limits."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--listen", default="127.0.0.1:10040", help="HOST:PORT for Postfix (10040)")
        parser.add_argument("--tenant", default=None, help="Tenant slug (default: the default tenant)")
        parser.add_argument(
            "--trusted-networks",
            default=settings.ENFORCEMENT_TRUSTED_NETWORKS,
            help="CIDR,… whose clients send outbound mail without SASL (like Postfix's mynetworks)",
        )
        parser.add_argument(
            "--instance-name", default="policy", help="A name for logs and restriction reasons"
        )
        parser.add_argument(
            "--metrics-listen", default="", help="HOST:PORT serving GET /metrics (Prometheus)"
        )
        parser.add_argument(
            "--no-ingest", action="store_true", help="Do not store accepted messages as events"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.REDIS_URL:
            raise CommandError(
                "The policy service needs Redis: set REDIS_URL (or a redis:// CELERY_BROKER_URL)."
            )
        try:
            networks = parse_networks(options["trusted_networks"] or "")
        except ValueError as exc:
            raise CommandError(f"--trusted-networks: {exc}") from exc
        host, port = host_port(options["listen"])
        metrics = host_port(options["metrics_listen"]) if options["metrics_listen"] else None
        server = PolicyServer(
            tenant_slug=options["tenant"],
            redis_url=settings.REDIS_URL,
            trusted_networks=networks,
            instance_name=options["instance_name"],
            ingest=not options["no_ingest"],
            forward_in_process=True,
        )
        # The loop shares the process with the ORM threads (the snapshot refresh every minute, a breach's
        # look-up): a short switch interval bounds how long one of them holds the GIL while an answer waits.
        sys.setswitchinterval(0.0005)
        asyncio.run(self._serve(server, host, port, metrics))

    async def _serve(
        self, server: PolicyServer, host: str, port: int, metrics: tuple[str, int] | None
    ) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        bound = await server.start(host, port, metrics=metrics)
        # Django and the snapshot are loaded: keep the collector from re-scanning them (shorter GC pauses).
        gc.collect()
        gc.freeze()
        where = f" metrics on {metrics[0]}:{server.metrics_port}" if metrics else ""
        self.stdout.write(f"Policy service listening on {host}:{bound}{where}", ending="\n")
        self.stdout.flush()
        await stop.wait()
        await server.stop()
