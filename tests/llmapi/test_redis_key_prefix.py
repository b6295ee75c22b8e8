"""REDIS_KEY_PREFIX covers every key the project writes: Django's cache (allauth's rate limits), Celery's broker."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import redis

from tests.helpers import PROJECT_DIR, wait_until
from tests.servers import RedisServer, celery_worker, database_url_of_tests

# A failed login and a password-reset mail (both rate-limited, counted in the cache), then a queued task.
CLIENT_SCRIPT = """
import django
django.setup()
from django.test import Client
from gateway.tasks import drain_usage
client = Client(HTTP_HOST="127.0.0.1")
client.post("/accounts/login/", {"login": "nobody@example.com", "password": "wrong"})
client.post("/accounts/password/reset/", {"email": "nobody@example.com"})
drain_usage.delay()
"""


@pytest.fixture
def private_redis():
    server = RedisServer().start()
    yield server
    server.stop()


def test_every_key_starts_with_the_prefix(private_redis, transactional_db, tmp_path):
    prefix = f"prefix-check-{uuid.uuid4().hex[:8]}"
    env = {
        "REDIS_URL": private_redis.url,
        "REDIS_KEY_PREFIX": prefix,
        "DATABASE_URL": database_url_of_tests(),
        "DJANGO_SETTINGS_MODULE": "llmapi.settings",
        "PYTHONPATH": str(PROJECT_DIR),
    }
    subprocess.run(
        [sys.executable, "-c", CLIENT_SCRIPT], cwd=PROJECT_DIR, env={**os.environ, **env}, check=True, timeout=120
    )
    client = redis.Redis.from_url(private_redis.url, decode_responses=True)
    written = set(client.scan_iter("*"))
    assert any(":allauth:rl:allauth.account:login_failed:" in key for key in written), written
    assert any(":allauth:rl:allauth.account:reset_password:" in key for key in written), written

    # A worker (with beat) takes the task and keeps its own books in the same Redis.
    with celery_worker(tmp_path, REDIS_URL=private_redis.url, REDIS_KEY_PREFIX=prefix):
        wait_until(lambda: client.exists(f"{prefix}:{{0}}:usage"), timeout=60)  # drain_usage ran (shard 0's stream)
        written = set(client.scan_iter("*"))
    assert [key for key in written if not key.startswith(prefix + ":")] == []
    client.close()
