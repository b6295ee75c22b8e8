"""`manage.py upstream add|list`: set up backends from the shell."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import URLValidator

from gateway.models import Upstream, UpstreamKind
from gateway.services import EVERY_CLAUDE_MODEL, upstream_add


class Command(BaseCommand):
    help = "Add or list upstream backends."

    def add_arguments(self, parser: ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        add = actions.add_parser("add", help="Add an upstream (or more credentials to it) and route models to it.")
        add.add_argument("name")
        add.add_argument("--kind", default=UpstreamKind.ANTHROPIC, choices=UpstreamKind.values)
        add.add_argument(
            "--base-url",
            required=True,
            help="e.g. https://api.anthropic.com, https://bedrock-runtime.REGION.amazonaws.com",
        )
        add.add_argument(
            "--credential",
            action="append",
            default=[],
            help="An API key; Bedrock: ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN] or an API key;"
            " Vertex: @FILE, a service account's JSON key. Repeat for a pool.",
        )
        add.add_argument(
            "--region",
            default="",
            help="Bedrock: the AWS region, when the base URL does not name it. Vertex: the location.",
        )
        add.add_argument(
            "--project", default="", help="Vertex: the Google Cloud project, if not the service account's."
        )
        add.add_argument(
            "--model",
            action="append",
            dest="models",
            help=f"A model name or glob to route here, or NAME=UPSTREAM_ID to give the upstream's own id for it;"
            f" repeat for several (default: {EVERY_CLAUDE_MODEL}).",
        )
        actions.add_parser("list", help="List upstreams, their credentials (masked) and routes.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "add":
            self.add(options)
        else:
            self.list()

    def add(self, options: dict[str, Any]) -> None:
        try:
            URLValidator(schemes=["http", "https"])(options["base_url"])
        except ValidationError:
            raise CommandError(f"--base-url is not an http(s) URL: {options['base_url']!r}") from None
        credentials = [
            read_credential(credential.strip()) for credential in options["credential"] if credential.strip()
        ]
        exists = Upstream.objects.filter(name=options["name"]).exists()
        if not credentials and not exists:
            raise CommandError("Give at least one --credential for a new upstream.")
        try:
            upstream = upstream_add(
                name=options["name"],
                kind=options["kind"],
                base_url=options["base_url"],
                credentials=credentials,
                model_globs=options["models"],
                region=options["region"],
                project=options["project"],
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        routes = ", ".join(options["models"] or [EVERY_CLAUDE_MODEL])
        self.stdout.write(
            f"{'Updated' if exists else 'Added'} upstream {upstream.name} ({upstream.base_url}) "
            f"with {upstream.credentials.filter(enabled=True).count()} credential(s); routes: {routes}"
        )

    def list(self) -> None:
        upstreams = Upstream.objects.prefetch_related("credentials", "targets__route")
        if not upstreams:
            self.stdout.write(
                "No upstreams yet. Add one with: manage.py upstream add NAME --base-url URL --credential KEY"
            )
            return
        for upstream in upstreams:
            state = "enabled" if upstream.enabled else "disabled"
            self.stdout.write(
                f"{upstream.name} {upstream.kind} {upstream.base_url} {state} priority {upstream.priority}"
            )
            for credential in upstream.credentials.all():
                when = f" {credential.disabled_at:%Y-%m-%d %H:%M} UTC" if credential.disabled_at else ""
                status = "enabled" if credential.enabled else f"disabled{when} ({credential.disabled_reason})"
                self.stdout.write(f"  credential {credential.masked}  {status}")
            for target in upstream.targets.all():
                model = target.upstream_model or "(same name)"
                self.stdout.write(f"  route {target.route.pattern} -> {model}  position {target.position}")


def read_credential(value: str) -> str:
    """A credential as given, or the contents of the file `@PATH` names (a Vertex service account key)."""
    if not value.startswith("@"):
        return value
    try:
        return Path(value[1:]).read_text().strip()
    except OSError as error:
        raise CommandError(f"cannot read the credential file {value[1:]!r}: {error.strerror}") from None
