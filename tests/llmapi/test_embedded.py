"""The embedded default: a fresh SQLite file, no PostgreSQL, no Redis, the real server."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.helpers import PROJECT_DIR, free_port, stop_process, wait_for_http


@pytest.fixture
def embedded_server(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    manage = [sys.executable, str(PROJECT_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, check=True, timeout=120)
    port = free_port()
    server = subprocess.Popen(
        [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base_url + "/", server)
        yield base_url
    finally:
        stop_process(server)


def test_home_page_admin_and_gateway_over_http(embedded_server):
    home = httpx.get(embedded_server + "/")
    assert home.status_code == 200
    for plan_name in ("Free", "Pro", "Max 5x", "Max 20x"):
        assert plan_name in home.text

    assert httpx.get(embedded_server + "/accounts/login/").status_code == 200
    assert httpx.get(embedded_server + "/admin/").status_code == 302
    assert httpx.get(embedded_server + "/static/css/site.css").status_code == 200

    gateway = httpx.post(embedded_server + "/v1/messages", json={})
    assert gateway.status_code == 401
    assert gateway.json()["error"]["type"] == "authentication_error"
