"""Upstream credentials encrypted at rest (Fernet), with keys from UPSTREAM_SECRET_KEYS.

The first key encrypts; every key decrypts. To rotate: put a new key first, keep the old ones
after it, run `manage.py reencrypt_upstream_credentials`, then drop the old keys.
"""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models


class UndecryptableCredentialError(Exception):
    """A stored credential that none of UPSTREAM_SECRET_KEYS decrypts (a key was dropped too early)."""


@cache
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def _fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.UPSTREAM_SECRET_KEYS))


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise UndecryptableCredentialError(
            "An upstream credential cannot be decrypted with any key in UPSTREAM_SECRET_KEYS."
        ) from None


class EncryptedTextField(models.TextField):
    """Text that Python code sees in clear and the database only ever holds encrypted.

    Encryption is randomised, so the column cannot be searched: filter on other fields.
    """

    def from_db_value(self, value: str | None, expression: object, connection: object) -> str | None:
        return None if value is None else decrypt(value)

    def get_prep_value(self, value: object) -> str | None:
        value = super().get_prep_value(value)
        return None if value is None else encrypt(value)
