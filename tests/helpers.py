"""Shared helpers for tests that start real processes and servers."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

PROJECT_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout} s")


def wait_for_http(url: str, process: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    """Wait until `url` answers at all; fail early if the server process has exited."""

    def answers() -> bool:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode}")
        try:
            httpx.get(url, timeout=1.0)
        except httpx.TransportError:
            return False
        return True

    wait_until(answers, timeout=timeout)


def stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
