"""`manage.py simulate_upstream`: a scripted stand-in for api.anthropic.com on this machine."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from gateway.simulator import SIMULATOR_API_KEY, run_simulator


class Command(BaseCommand):
    help = "Serve the scripted Anthropic upstream simulator (gateway/simulator.py) until interrupted."

    # It touches no database or model: starting must not depend on either being set up.
    requires_system_checks: list[str] = []  # noqa: RUF012 - Django's declared type is a list

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (127.0.0.1)")
        parser.add_argument("--port", type=int, default=8100, help="port to listen on (8100)")

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        run_simulator(host=host, port=port, announce=self.announce)

    def announce(self, base_url: str) -> None:
        self.stdout.write(
            f"Simulated Anthropic upstream listening on {base_url}; "
            f"use any API key, e.g. ANTHROPIC_BASE_URL={base_url} ANTHROPIC_API_KEY={SIMULATOR_API_KEY}"
        )
        # A parent process (a test, a script) waits for this line through a pipe.
        self.stdout.flush()
