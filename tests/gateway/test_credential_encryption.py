"""Upstream credentials at rest: encrypted in every row and dump, readable after a key rotation."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from gateway.models import UpstreamCredential
from gateway.services import upstream_add
from llmapi.invalidation import publish
from tests.helpers import PROJECT_DIR
from tests.servers import database_url_of_tests

SECRET = "sk-ant-api03-" + "q" * 60


def stored_secrets() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("select secret from gateway_upstreamcredential")
        return [row[0] for row in cursor.fetchall()]


def test_the_database_and_its_dump_hold_no_upstream_secret_in_clear(transactional_db):
    upstream_add(name="main", base_url="https://api.anthropic.example", credentials=[SECRET])
    assert UpstreamCredential.objects.get().secret == SECRET
    (stored,) = stored_secrets()
    assert SECRET not in stored
    assert "q" * 20 not in stored
    dump = subprocess.run(
        ["pg_dump", "--data-only", "--table", "gateway_upstreamcredential", database_url_of_tests()],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert stored in dump
    assert SECRET not in dump


def test_rotating_the_key_keeps_the_gateway_serving(gateway, settings):
    old_key = settings.UPSTREAM_SECRET_KEYS[0]
    new_key = Fernet.generate_key().decode()
    before = stored_secrets()

    settings.UPSTREAM_SECRET_KEYS = [new_key, old_key]  # 1. every process gets the new key first
    call_command("reencrypt_upstream_credentials")  # 2. re-encrypt with it
    settings.UPSTREAM_SECRET_KEYS = [new_key]  # 3. the old key goes
    publish("routes")  # the gateway reloads its backends, decrypting with the new key alone

    after = stored_secrets()
    assert after != before
    assert [Fernet(new_key).decrypt(token.encode()).decode() for token in after] == ["sk-ant-sim-primary"]
    message = gateway.client().messages.create(
        model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "Hello"}]
    )
    assert message.content[0].text == "Hello from the simulator."
    assert gateway.simulator.requests()[-1]["headers"]["x-api-key"] == "sk-ant-sim-primary"


def test_the_migration_encrypts_rows_stored_in_clear(transactional_db):
    executor = MigrationExecutor(connection)
    gateway_migrations = [key for key in executor.loader.graph.nodes if key[0] == "gateway"]
    encrypting = next(key for key in gateway_migrations if key[1].endswith("encrypt_upstream_credentials"))
    before = executor.loader.graph.node_map[encrypting].parents
    (previous,) = [parent.key for parent in before if parent.key[0] == "gateway"]
    latest = executor.loader.graph.leaf_nodes("gateway")
    executor.migrate([previous])
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "insert into gateway_upstream (name, kind, base_url, extra_headers, connect_timeout,"
                " read_timeout, enabled, priority, weight)"
                " values ('old', 'anthropic', 'https://a.example', '{}', 10, 600, true, 1, 1) returning id"
            )
            (upstream_id,) = cursor.fetchone()
            cursor.execute(
                "insert into gateway_upstreamcredential (upstream_id, label, secret, enabled, disabled_reason,"
                " created_at) values (%s, '', %s, true, '', now())",
                [upstream_id, SECRET],
            )
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(latest)
    (stored,) = stored_secrets()
    assert SECRET not in stored
    assert UpstreamCredential.objects.get().secret == SECRET


@pytest.mark.parametrize(
    ("keys", "message"),
    [(None, "UPSTREAM_SECRET_KEYS is not set"), ("not-a-fernet-key", "must be Fernet keys")],
)
def test_settings_refuse_missing_or_malformed_keys_when_debug_is_off(keys, message):
    env = {name: value for name, value in os.environ.items() if name != "UPSTREAM_SECRET_KEYS"}
    env.update(DEBUG="0", SECRET_KEY="x" * 50, DJANGO_SETTINGS_MODULE="llmapi.settings")
    if keys is not None:
        env["UPSTREAM_SECRET_KEYS"] = keys
    result = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; settings.UPSTREAM_SECRET_KEYS"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr
