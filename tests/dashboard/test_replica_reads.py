"""The usage reports read from a PostgreSQL replica when one is configured, and nothing else does.

The "replica" here is a real second database, a copy of the test database taken with pg_dump,
whose rollups are then changed: a page that shows the changed numbers read them from the replica.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from django.db import connections
from django.urls import reverse

from gateway.usage.models import UsageRollup
from gateway.usage.record import UsageRecord
from gateway.usage.services import usage_ingest
from keys.services import api_key_create
from llmapi.database_router import REPLICA, ReplicaRouter, reports_from_replica

REPLICA_ONLY_TOKENS = 4_242_424  # written to the replica alone


def psql_command(database: dict, name: str) -> list[str]:
    return ["-h", database["HOST"], "-p", str(database["PORT"]), "-U", database["USER"], name]


@pytest.fixture
def replica(live_server_db, alice, settings) -> Iterator[str]:
    """A copy of the test database (alice's usage in it), configured as the replica."""
    key = api_key_create(user=alice, name="laptop").api_key
    at = datetime.now(UTC).timestamp() - 600
    usage_ingest(records=[UsageRecord("r1", key.pk, alice.pk, "claude-sonnet-4-6", True, status=200, ended_at=at)])
    primary = connections.settings["default"]
    name = f"{primary['NAME']}_replica"
    subprocess.run(["dropdb", "--if-exists", *psql_command(primary, name)], check=True)
    subprocess.run(["createdb", *psql_command(primary, name)], check=True)
    dump = subprocess.run(["pg_dump", *psql_command(primary, primary["NAME"])], check=True, capture_output=True)
    subprocess.run(["psql", "-q", *psql_command(primary, name)], input=dump.stdout, check=True, capture_output=True)
    # What DATABASE_REPLICA_URL configures, made after the test's database set-up (which allows
    # only the aliases it knew): a connection of the handler's, not listed in its settings.
    connections.settings[REPLICA] = {**primary, "NAME": name}
    replica_connection = connections.create_connection(REPLICA)
    del connections.settings[REPLICA]
    connections[REPLICA] = replica_connection
    settings.DATABASE_REPLICA_URL = f"postgres://{primary['USER']}@{primary['HOST']}:{primary['PORT']}/{name}"
    UsageRollup.objects.using(REPLICA).update(input_tokens=REPLICA_ONLY_TOKENS)
    try:
        yield name
    finally:
        replica_connection.close()
        del connections[REPLICA]
        subprocess.run(["dropdb", "--if-exists", *psql_command(primary, name)], check=True)


def test_the_usage_page_and_export_read_the_replica(replica, alice_client):
    page = alice_client.get(reverse("dashboard:usage"), {"period": "24h"}).content.decode()
    assert f"{REPLICA_ONLY_TOKENS:,}" in page
    export = alice_client.get(reverse("dashboard:usage_export"), {"period": "24h"}).content.decode()
    assert str(REPLICA_ONLY_TOKENS) in export


def test_everything_else_reads_the_primary(replica, alice_client):
    assert REPLICA_ONLY_TOKENS not in UsageRollup.objects.values_list("input_tokens", flat=True)
    overview = alice_client.get(reverse("dashboard:overview"))
    assert overview.status_code == 200


def test_without_a_replica_the_reports_read_the_primary(settings):
    router = ReplicaRouter()
    assert not settings.DATABASE_REPLICA_URL
    with reports_from_replica():
        assert router.db_for_read(UsageRollup) is None
    settings.DATABASE_REPLICA_URL = "postgres://replica.internal/llmapi"
    assert router.db_for_read(UsageRollup) is None  # outside a report
    with reports_from_replica():
        assert router.db_for_read(UsageRollup) == REPLICA
        assert router.db_for_write(UsageRollup) is None  # writes never
    assert not router.allow_migrate(REPLICA, "gateway")
