"""`manage.py reencrypt_upstream_credentials`: encrypt every upstream credential with the newest key."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from gateway.credential_encryption import UndecryptableCredentialError
from gateway.services import upstream_credentials_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypt every upstream credential with the first key of UPSTREAM_SECRET_KEYS. Run it after "
        "putting a new key first; then the older keys can be removed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count = upstream_credentials_reencrypt()
        except UndecryptableCredentialError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Re-encrypted {count} upstream credential(s) with the first key of UPSTREAM_SECRET_KEYS.")
