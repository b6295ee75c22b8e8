"""The shape of an API key: `sk-llmapi-`, 40 random base62 characters, a 6-character checksum.

The checksum (CRC32 of the random part, in base62) lets the gateway refuse a mistyped or made-up
key without any lookup, and lets secret scanners recognise a leaked key with few false alarms.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import zlib

from django.conf import settings

PREFIX = "sk-llmapi-"
RANDOM_LENGTH = 40
CHECKSUM_LENGTH = 6
KEY_LENGTH = len(PREFIX) + RANDOM_LENGTH + CHECKSUM_LENGTH
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_BASE62_SET = frozenset(BASE62)
DISPLAY_PREFIX_LENGTH = len(PREFIX) + 4


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, remainder = divmod(number, 62)
        digits.append(BASE62[remainder])
    return "".join(reversed(digits))


def _checksum(random_part: str) -> str:
    return _base62(zlib.crc32(random_part.encode()), CHECKSUM_LENGTH)


def generate_key() -> str:
    random_part = "".join(secrets.choice(BASE62) for _ in range(RANDOM_LENGTH))
    return PREFIX + random_part + _checksum(random_part)


def is_well_formed(key: str) -> bool:
    """Prefix, length, alphabet and checksum; no lookup."""
    if len(key) != KEY_LENGTH or not key.startswith(PREFIX):
        return False
    body = key[len(PREFIX) :]
    if not _BASE62_SET.issuperset(body):
        return False
    random_part, checksum = body[:RANDOM_LENGTH], body[RANDOM_LENGTH:]
    return hmac.compare_digest(_checksum(random_part), checksum)


def hash_key(key: str) -> str:
    """The keyed hash stored in place of the key (a leaked table is useless without the secret)."""
    return _keyed_hash(settings.API_KEY_HASH_SECRET, key)


def old_hashes(key: str) -> list[str]:
    """The key's hashes under the previous secrets (API_KEY_HASH_SECRETS_OLD), newest first: keys
    stored before a rotation are found by one of these until they are re-hashed."""
    return [_keyed_hash(secret, key) for secret in settings.API_KEY_HASH_SECRETS_OLD]


def _keyed_hash(secret: str, key: str) -> str:
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()


def display_parts(key: str) -> tuple[str, str]:
    """What may be shown of a key after creation: its first characters and its last four."""
    return key[:DISPLAY_PREFIX_LENGTH], key[-4:]
