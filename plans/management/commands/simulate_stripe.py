"""`manage.py simulate_stripe`: a stand-in for Stripe's API, Checkout and Customer Portal on this machine."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from plans.stripe_standin.server import DEFAULT_API_KEY, DEFAULT_WEBHOOK_SECRET, run_standin


class Command(BaseCommand):
    help = "Serve the Stripe stand-in (plans/stripe_standin/) until interrupted."

    # It touches no database or model: starting must not depend on either being set up.
    requires_system_checks: list[str] = []  # noqa: RUF012 - Django's declared type is a list

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (127.0.0.1)")
        parser.add_argument("--port", type=int, default=8200, help="port to listen on (8200)")
        parser.add_argument(
            "--api-key", default=DEFAULT_API_KEY, help=f"the secret key clients must use ({DEFAULT_API_KEY})"
        )
        parser.add_argument(
            "--webhook-url",
            default="http://127.0.0.1:8000/stripe/webhook/",
            help="where events are posted (http://127.0.0.1:8000/stripe/webhook/); empty: nowhere",
        )
        parser.add_argument(
            "--webhook-secret", default=DEFAULT_WEBHOOK_SECRET, help=f"signs the events ({DEFAULT_WEBHOOK_SECRET})"
        )

    def handle(
        self, *args: Any, host: str, port: int, api_key: str, webhook_url: str, webhook_secret: str, **options: Any
    ) -> None:
        self._settings = (api_key, webhook_secret, webhook_url)
        run_standin(
            host=host,
            port=port,
            api_key=api_key,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            announce=self.announce,
        )

    def announce(self, base_url: str) -> None:
        api_key, webhook_secret, webhook_url = self._settings
        self.stdout.write(
            f"Stripe stand-in listening on {base_url}, sending events to {webhook_url or 'nowhere'}; point the "
            f"project at it with STRIPE_API_BASE={base_url} STRIPE_SECRET_KEY={api_key} "
            f"STRIPE_WEBHOOK_SECRET={webhook_secret}"
        )
        self.stdout.flush()
