"""Real servers for tests: the whole ASGI application under uvicorn, in a thread of the test process.

A thread (not a subprocess) lets tests read the gateway's in-process state (usage records, health)
while every request still crosses a real loopback HTTP connection.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import redis
import uvicorn
from django.conf import settings

from llmapi.proxies import forwarded_allow_ips
from tests.helpers import PROJECT_DIR, free_port, stop_process, wait_for_http, wait_until


class UvicornThread:
    def __init__(self, app: object) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, lifespan="on", log_level="warning", access_log=False, forwarded_allow_ips=forwarded_allow_ips()
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def start(self) -> UvicornThread:
        self._thread.start()
        wait_until(lambda: self._server.started or not self._thread.is_alive())
        if not self._server.started:
            raise RuntimeError("uvicorn did not start")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._socket.close()


@contextmanager
def gateway_process(workers: int = 1, **env: str) -> Iterator[str]:
    """The whole application in a process of its own (uvicorn), on the test database.

    `workers` > 1 runs uvicorn's production shape: a supervisor and that many worker processes
    on one socket. `env` overrides the environment (e.g. REDIS_URL). Yields its base URL.
    """
    with _uvicorn(workers, env) as (base_url, _):
        yield base_url


@contextmanager
def gateway_process_with_pid(**env: str) -> Iterator[tuple[str, int]]:
    """One gateway process (no supervisor), with its process id, for tests that read its memory."""
    with _uvicorn(1, env) as (base_url, process):
        yield base_url, process.pid


@contextmanager
def _uvicorn(workers: int, env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "llmapi.asgi:application",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--forwarded-allow-ips",
            forwarded_allow_ips(),
        ],
        cwd=PROJECT_DIR,
        env={**os.environ, "DATABASE_URL": database_url_of_tests(), "DEBUG": "0", **env},
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        # Importing the project takes seconds, and far longer on a machine shared by busy neighbours.
        wait_for_http(base_url + "/v1/models", process, timeout=120)
        yield base_url, process
    finally:
        stop_process(process)


class RedisServer:
    """A private redis-server on loopback that a test may stop and start again on its port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_until(self._answers)
        return self

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            self._process = None

    def _answers(self) -> bool:
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError("redis-server exited")
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except redis.ConnectionError:
            return False


@contextmanager
def celery_worker(tmp_path: Path, **env: str) -> Iterator[subprocess.Popen]:
    """A Celery worker with embedded beat, in its own process group, on the test database."""
    worker = [sys.executable, "-m", "celery", "-A", "llmapi", "worker", "--pool", "solo", "--loglevel", "WARNING"]
    process = subprocess.Popen(
        [*worker, "-B", "--schedule", str(tmp_path / "beat-schedule")],
        cwd=PROJECT_DIR,
        env={**os.environ, "DATABASE_URL": database_url_of_tests(), "DEBUG": "0", **env},
        start_new_session=True,  # one signal reaches the worker and its beat
    )
    try:
        yield process
    finally:
        kill_group(process)


def kill_group(process: subprocess.Popen, signal_number: int = signal.SIGKILL) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal_number)
    process.wait(timeout=15)


def database_url_of_tests() -> str:
    database = settings.DATABASES["default"]  # the test database pytest-django created
    return f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
