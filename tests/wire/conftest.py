"""Fixtures for driving real Anthropic clients (the TypeScript SDK, Claude Code) at the live gateway.

The npm packages are installed by `make test` (`npm ci --prefix tests/wire`) before pytest runs:
a test never reaches the network. A machine without node, npm or that install fails these tests
with a message saying so; they never skip.
"""

from __future__ import annotations

import json
import os
import shutil
import socketserver
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gateway

WIRE_DIR = Path(__file__).resolve().parent
SCRIPTS_DIR = WIRE_DIR / "js"
NODE_MODULES = WIRE_DIR / "node_modules"
CLAUDE_BIN = NODE_MODULES / ".bin" / "claude"
INSTALL_HINT = "run `make test` (it runs `npm ci --prefix tests/wire`) or that npm command by hand"

# Long enough for a cold start on a slow machine; the processes normally finish in about a second.
PROCESS_TIMEOUT = 120


def clean_env(home: Path, **variables: str) -> dict[str, str]:
    """A child environment with nothing of ours in it but PATH: no ANTHROPIC_* or proxy leaks in."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        **variables,
    }


@dataclass
class NodeRunner:
    """Runs the scripts under tests/wire/js with `node` and reads the JSON line they print."""

    node: str
    home: Path

    def run(self, script: str, *args: str, **env: str) -> dict[str, Any]:
        completed = subprocess.run(
            [self.node, str(SCRIPTS_DIR / script), *args],
            cwd=WIRE_DIR,
            env=clean_env(self.home, **env),
            capture_output=True,
            text=True,
            timeout=PROCESS_TIMEOUT,
            check=False,
        )
        assert completed.returncode == 0, (
            f"{script} exited with {completed.returncode}\nstdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
        )
        return json.loads(completed.stdout.strip().splitlines()[-1])


def require_install(path: Path) -> None:
    if not path.exists():
        pytest.fail(f"{path.relative_to(WIRE_DIR.parent.parent)} is missing: {INSTALL_HINT}", pytrace=False)


@pytest.fixture(scope="session")
def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("`node` is not on the PATH: the wire tests need Node.js and npm installed", pytrace=False)
    require_install(NODE_MODULES / "@anthropic-ai" / "sdk" / "package.json")
    return node


@pytest.fixture
def node(node_binary: str, tmp_path: Path) -> NodeRunner:
    home = tmp_path / "home"
    home.mkdir()
    return NodeRunner(node_binary, home)


@pytest.fixture(scope="session")
def claude_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The native `claude` binary that the package's postinstall put in place of a stub."""
    require_install(CLAUDE_BIN)
    home = tmp_path_factory.mktemp("claude-version-home")
    completed = subprocess.run(
        [str(CLAUDE_BIN), "--version"],
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )
    if completed.returncode != 0 or "Claude Code" not in completed.stdout:
        pytest.fail(f"`claude --version` failed ({INSTALL_HINT}):\n{completed.stderr}", pytrace=False)
    return CLAUDE_BIN


@dataclass
class Exchange:
    """One HTTP request the live server handled, as the client sent it, and the status it got."""

    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes = b""
    status: int | None = None
    error_body: bytes = b""  # the answer's body, kept only for statuses >= 400


class TrafficRecorder:
    """Sees every request that reaches the live server, /v1 or not, before the application does.

    The simulator only shows what the gateway passed on; this shows what the client itself sent
    (HEAD probes, paths answered 404, credentials) and what the gateway answered.
    """

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def wrap(self, app: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        async def recording(scope: dict[str, Any], receive: Callable[[], Awaitable[dict]], send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            exchange = Exchange(
                method=scope["method"],
                path=scope["path"],
                query_string=scope["query_string"].decode("latin-1"),
                headers={name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]},
            )
            self.exchanges.append(exchange)

            async def recording_receive() -> dict[str, Any]:
                message = await receive()
                if message["type"] == "http.request":
                    exchange.body += message.get("body", b"")
                return message

            async def recording_send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    exchange.status = message["status"]
                elif message["type"] == "http.response.body" and (exchange.status or 0) >= 400:
                    exchange.error_body += message.get("body", b"")
                await send(message)

            await app(scope, recording_receive, recording_send)

        return recording


@pytest.fixture
def traffic(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> TrafficRecorder:
    """Records the live server's traffic for one test.

    llmapi.asgi looks its two applications up at each request, so wrapping them there sees
    everything the running server gets, with no proxy in between to change the conversation.
    """
    import llmapi.asgi

    recorder = TrafficRecorder()
    for name in ("gateway_application", "django_application"):
        monkeypatch.setattr(llmapi.asgi, name, recorder.wrap(getattr(llmapi.asgi, name)))
    return recorder


class ProxyTrap:
    """A proxy that forwards nothing: it notes the first line of each request and hangs up.

    Claude Code gets it as HTTP(S)_PROXY with 127.0.0.1 exempted (NO_PROXY), so any other host
    it tried to reach would show up here instead of leaving the machine.
    """

    def __init__(self) -> None:
        self.attempts: list[str] = []
        trap = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                trap.attempts.append(self.rfile.readline(1024).decode("latin-1").strip())

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ProxyTrap:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def proxy_trap() -> Iterator[ProxyTrap]:
    with ProxyTrap() as trap:
        yield trap


@dataclass
class ClaudeCode:
    """The Claude Code CLI from node_modules, run headless against the live gateway.

    Its HOME is an empty temporary folder (no login, no settings of the machine's user) and the
    environment carries only what a user would set, plus the switches that keep it off the
    network: CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC (no telemetry, bootstrap, catalogue or
    update checks) and DISABLE_AUTOUPDATER; a `ProxyTrap` catches whatever would still go out.
    IS_SANDBOX lets it run as root.
    """

    binary: Path
    home: Path
    workdir: Path
    base_url: str
    traffic: TrafficRecorder
    simulator: Any
    proxy: ProxyTrap

    def run(self, prompt: str, *, succeeds: bool = True, **env: str) -> dict[str, Any]:
        """`claude -p PROMPT --output-format json`; `env` adds a credential and any other variable.
        With `succeeds` false, the run is expected to end in an error (exit status 1).

        Every run goes through the proxy trap, so that nothing Claude Code sends can leave loopback.
        """
        proxy = {"HTTP_PROXY": self.proxy.url, "HTTPS_PROXY": self.proxy.url, "NO_PROXY": "127.0.0.1,localhost"}
        variables = {
            "ANTHROPIC_BASE_URL": self.base_url,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "IS_SANDBOX": "1",
            **proxy,
        }
        child_env = clean_env(self.home, **{**variables, **env})
        attempts_before = len(self.proxy.attempts)
        command = [str(self.binary), "-p", prompt, "--output-format", "json"]
        try:
            completed = subprocess.run(
                command,
                cwd=self.workdir,
                env=child_env,
                capture_output=True,
                text=True,
                timeout=PROCESS_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"claude did not finish in {PROCESS_TIMEOUT} s; {self.diagnosis()}", pytrace=False)
        assert completed.returncode == (0 if succeeds else 1), (
            f"claude exited with {completed.returncode}\nstdout:\n{completed.stdout}\n"
            f"stderr:\n{completed.stderr}\n{self.diagnosis()}"
        )
        assert self.proxy.attempts[attempts_before:] == [], "claude tried to reach other hosts"
        return json.loads(completed.stdout)

    def diagnosis(self) -> str:
        """What went over the wire, for failure messages: Claude Code retries quietly."""
        answers = [(e.method, e.path, e.query_string, e.status, e.error_body[:300]) for e in self.traffic.exchanges]
        upstream = [(r["method"], r["path"], r["query_string"]) for r in self.simulator.requests()]
        return f"gateway saw {answers}; upstream saw {upstream}"


@pytest.fixture
def claude(
    claude_binary: Path, gateway: Gateway, traffic: TrafficRecorder, proxy_trap: ProxyTrap, tmp_path: Path
) -> ClaudeCode:
    home, workdir = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    workdir.mkdir()
    return ClaudeCode(claude_binary, home, workdir, gateway.base_url, traffic, gateway.simulator, proxy_trap)
