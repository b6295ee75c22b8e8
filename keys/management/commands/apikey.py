"""`manage.py apikey create EMAIL`: a key from the shell (the user is created if needed)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from accounts.models import User
from keys.services import ApiKeyLimitError, api_key_create
from plans.models import Plan


class Command(BaseCommand):
    help = "Create an API key for a user, printing it once."

    def add_arguments(self, parser: ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create a key; the user is created if needed.")
        create.add_argument("email")
        create.add_argument("--name", default="Default", help="A name for the key.")
        create.add_argument("--plan", help="Put the user on this plan (its slug, e.g. pro).")

    def handle(self, *args: Any, **options: Any) -> None:
        email = options["email"].strip().lower()
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"Not an email address: {options['email']!r}") from None
        plan = self.plan(options["plan"])
        with transaction.atomic():
            user = User.objects.filter(email__iexact=email).first()
            if user is None:
                user = User.objects.create_user(email)  # no password: they can set one by reset
                self.stderr.write(f"Created user {email}")
            if plan is not None and user.plan_id != plan.pk:
                user.plan = plan
                user.save(update_fields=["plan"])
            try:
                created = api_key_create(user=user, name=options["name"])
            except ApiKeyLimitError as exc:
                raise CommandError(str(exc)) from None
        self.stderr.write(f"Key {created.api_key.name!r} for {email}; it is shown only this once:")
        self.stdout.write(created.secret)

    def plan(self, slug: str | None) -> Plan | None:
        if slug is None:
            return None
        plan = Plan.objects.filter(slug=slug).first()
        if plan is None:
            choices = ", ".join(Plan.objects.values_list("slug", flat=True))
            raise CommandError(f"No plan {slug!r}; choose one of: {choices}")
        return plan
