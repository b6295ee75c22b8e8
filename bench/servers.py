"""The gateway under each ASGI server the bench compares, as processes it starts and stops.

`production` is the production launcher (python -m llmapi.server): uvicorn workers, each on a
listening socket of its own (SO_REUSEPORT), so the kernel spreads connections over them.
uvicorn's own `--workers` (uvloop + httptools) and granian share one listening socket among their
worker processes. Daphne has no worker option, so the bench binds the socket itself and hands it to two
Daphne processes (`--fd`), which is how one runs Daphne on several cores.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import time
from pathlib import Path

from bench import procstat
from bench.netutil import HOST, stop_group, wait_for_port

GATEWAY_SERVERS = ("production", "uvicorn", "granian", "daphne")  # the gateway under each ASGI server
SERVERS = (*GATEWAY_SERVERS, "passthrough")
APP = "llmapi.asgi:application"
PASSTHROUGH_APP = "bench.passthrough:app"  # the yardstick, not the gateway (bench/passthrough.py)
PROJECT_DIR = Path(__file__).resolve().parent.parent
# uv from the PATH, or the private copy `make` installs on a machine that has none.
UV = shutil.which("uv") or str(PROJECT_DIR / ".tools" / "bin" / "uv")
# --no-sync/--offline: nothing is installed or looked up while measuring (bench/run.py prepares it).
UV_RUN = [UV, "run", "--no-sync", "--offline"]


def uvicorn_command(port: int, workers: int, app: str = APP) -> list[str]:
    return [
        *UV_RUN,
        "uvicorn",
        app,
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        "--backlog",
        "16384",
    ]


def production_command(port: int, workers: int) -> list[str]:
    return [*UV_RUN, "python", "-m", "llmapi.server", "--host", HOST, "--port", str(port), "--workers", str(workers)]


def granian_command(port: int, workers: int) -> list[str]:
    return [
        *UV_RUN,
        "--with",
        "granian",
        "granian",
        "--interface",
        "asgi",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "1",
        "--no-ws",
        "--log-level",
        "warning",
        "--no-access-log",
        "--backlog",
        "16384",
        APP,
    ]


def daphne_command(fd: int) -> list[str]:
    return [*UV_RUN, "daphne", "--fd", str(fd), "-v", "0", APP]


def gateway_answers(port: int) -> bool:
    """True once the application itself answers (any status) on /v1/models."""
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        connection.request("GET", "/v1/models")
        connection.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        connection.close()


class GatewayServer:
    """The whole ASGI application (gateway and Django) under one server, with `workers` processes."""

    def __init__(self, kind: str, port: int, env: dict[str, str], log_dir: Path, workers: int = 2) -> None:
        if kind not in SERVERS:
            raise ValueError(f"unknown server {kind!r}; choose from {SERVERS}")
        self.kind = kind
        self.port = port
        self.base_url = f"http://{HOST}:{port}"
        self.env = env
        self.log_path = log_dir / f"{kind}-{port}.log"
        self.workers = workers
        self.processes: list[subprocess.Popen[bytes]] = []
        self._socket: socket.socket | None = None

    def start(self, timeout: float = 90.0) -> GatewayServer:
        with self.log_path.open("ab") as log:
            if self.kind == "daphne":
                self._socket = socket.create_server((HOST, self.port), backlog=16384)
                self._socket.set_inheritable(True)
                fd = self._socket.fileno()
                for _ in range(self.workers):
                    self._spawn(daphne_command(fd), log, pass_fds=(fd,))
            elif self.kind == "production":
                self._spawn(production_command(self.port, self.workers), log)
            elif self.kind == "granian":
                self._spawn(granian_command(self.port, self.workers), log)
            elif self.kind == "passthrough":
                self._spawn(uvicorn_command(self.port, self.workers, PASSTHROUGH_APP), log)
            else:
                self._spawn(uvicorn_command(self.port, self.workers), log)
        try:
            self._wait_until_serving(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, command: list[str], log: object, pass_fds: tuple[int, ...] = ()) -> None:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=pass_fds,
        )
        self.processes.append(process)

    def _wait_until_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if self._socket is None:
            wait_for_port(self.port, self.processes[0], timeout)
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{self.kind} exited ({process.returncode}); see {self.log_path}")
            if gateway_answers(self.port) and len(self.worker_processes()) >= self.workers:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.kind} did not start within {timeout} s; see {self.log_path}")

    @property
    def root_pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def worker_processes(self) -> list[procstat.ProcessInfo]:
        return procstat.worker_processes(self.root_pids)

    def cpu_seconds(self) -> float:
        return procstat.tree_cpu_seconds(self.root_pids)

    def worker_rss_bytes(self) -> list[int]:
        return [info.rss_bytes for info in self.worker_processes()]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        for process in self.processes:
            stop_group(process)
        self.processes = []
        if self._socket is not None:
            self._socket.close()
            self._socket = None
