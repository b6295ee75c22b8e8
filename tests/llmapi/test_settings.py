"""Settings come from the environment through typed helpers, with safe defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from llmapi.env import email_settings, env_bool, env_int, env_list
from tests.helpers import PROJECT_DIR

PRINT_SETTINGS = """
import json
from django.conf import settings
print(json.dumps({
    "database": settings.DATABASES["default"],
    "debug": settings.DEBUG,
    "allowed_hosts": settings.ALLOWED_HOSTS,
    "csrf_trusted_origins": settings.CSRF_TRUSTED_ORIGINS,
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "celery_eager": settings.CELERY_TASK_ALWAYS_EAGER,
    "email_backend": settings.EMAIL_BACKEND,
    "api_key_hash_secret": settings.API_KEY_HASH_SECRET,
    "api_key_hash_secrets_old": settings.API_KEY_HASH_SECRETS_OLD,
}, default=str))
"""


def load_settings(**env: str) -> subprocess.CompletedProcess:
    """Import the settings in a fresh interpreter with exactly this environment."""
    clean = {key: value for key, value in os.environ.items() if key not in SETTING_NAMES}
    clean.update(env, DJANGO_SETTINGS_MODULE="llmapi.settings")
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=PROJECT_DIR,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


SETTING_NAMES = {
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "API_KEY_HASH_SECRET",
    "API_KEY_HASH_SECRETS_OLD",
    "DEBUG",
    "ALLOWED_HOSTS",
    "PUBLIC_BASE_URL",
    "EMAIL_URL",
    "CSRF_TRUSTED_ORIGINS",
    "GATEWAY_REDIS_URL",
    "GATEWAY_REDIS_CLUSTER",
}


PRODUCTION_SECRETS = {"SECRET_KEY": "x" * 50, "API_KEY_HASH_SECRET": "y" * 50}


def loaded(**env: str) -> dict:
    result = load_settings(**env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_database_url_gives_postgres_settings():
    settings = loaded(**PRODUCTION_SECRETS, DATABASE_URL="postgres://app:s3cret@db.internal:6543/llm")
    database = settings["database"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["NAME"], database["USER"], database["PASSWORD"]) == ("llm", "app", "s3cret")
    assert (database["HOST"], database["PORT"]) == ("db.internal", 6543)


def test_default_database_is_sqlite_beside_manage_py():
    database = loaded(DEBUG="1")["database"]
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["NAME"] == str(PROJECT_DIR / "db.sqlite3")


def test_missing_secret_key_with_debug_off_refuses_to_start():
    result = load_settings(DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_missing_api_key_hash_secret_with_debug_off_refuses_to_start():
    result = load_settings(DEBUG="0", SECRET_KEY="x" * 50)
    assert result.returncode != 0
    assert "API_KEY_HASH_SECRET is not set" in result.stderr
    assert "x" * 50 not in result.stderr


def test_api_key_hash_secret_never_falls_back_to_secret_key():
    settings = loaded(DEBUG="1", SECRET_KEY="x" * 50)
    assert settings["api_key_hash_secret"] != "x" * 50
    rotated = loaded(**PRODUCTION_SECRETS, API_KEY_HASH_SECRETS_OLD="older, oldest")
    assert rotated["api_key_hash_secrets_old"] == ["older", "oldest"]


def test_debug_off_uses_secure_cookies_and_public_url_for_csrf():
    settings = loaded(**PRODUCTION_SECRETS, PUBLIC_BASE_URL="https://llmapi.example")
    assert settings["debug"] is False
    assert settings["session_cookie_secure"] is True
    assert settings["csrf_trusted_origins"] == ["https://llmapi.example"]
    assert "llmapi.example" in settings["allowed_hosts"]


def test_without_redis_celery_runs_eagerly_and_mail_goes_to_console():
    settings = loaded(DEBUG="1")
    assert settings["celery_eager"] is True
    assert settings["email_backend"] == "django.core.mail.backends.console.EmailBackend"


def test_invalid_boolean_is_refused(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="DEBUG must be a boolean"):
        env_bool("DEBUG")


def test_typed_helpers_parse_and_default(monkeypatch):
    monkeypatch.setenv("SOME_NUMBER", "42")
    monkeypatch.setenv("SOME_LIST", "a.example, b.example,,")
    assert env_int("SOME_NUMBER", 1) == 42
    assert env_int("UNSET_NUMBER_FOR_TEST", 7) == 7
    assert env_list("SOME_LIST") == ["a.example", "b.example"]
    monkeypatch.setenv("SOME_NUMBER", "forty")
    with pytest.raises(ImproperlyConfigured, match="SOME_NUMBER must be an integer"):
        env_int("SOME_NUMBER", 1)


def test_smtp_email_url():
    settings = email_settings("smtp://mailer:p%40ss@smtp.example.com:587?tls=1")
    assert settings == {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "smtp.example.com",
        "EMAIL_PORT": 587,
        "EMAIL_HOST_USER": "mailer",
        "EMAIL_HOST_PASSWORD": "p@ss",
        "EMAIL_USE_SSL": False,
        "EMAIL_USE_TLS": True,
    }


def test_unknown_email_scheme_is_refused():
    with pytest.raises(ImproperlyConfigured, match="EMAIL_URL scheme"):
        email_settings("pigeon://coop")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_URL": "redis://r:6379/0", "GATEWAY_REDIS_CLUSTER": "1"}, "needs GATEWAY_REDIS_URL"),
        ({"REDIS_URL": "redis://r:6379/0", "GATEWAY_REDIS_URL": "redis://a:1,redis://b:2"}, "GATEWAY_REDIS_CLUSTER=1"),
        ({"GATEWAY_REDIS_URL": "redis://a:1"}, "GATEWAY_REDIS_URL needs REDIS_URL too"),
    ],
)
def test_a_gateway_redis_that_cannot_work_is_refused_at_start(env, message):
    result = load_settings(DEBUG="1", **env)
    assert result.returncode != 0
    assert message in result.stderr
