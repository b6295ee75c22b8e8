"""Real servers for tests: the whole ASGI application under uvicorn, in a thread of the test process.

A thread (not a subprocess) lets tests read the gateway's in-process state (usage records, health)
while every request still crosses a real loopback HTTP connection.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
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
    """A private redis-server on loopback that a test may stop and start again on its port.

    With `data_dir`, it persists as docs/operations.md asks production to (an append-only file,
    flushed every second), so that a restart finds what it held; without, it keeps nothing.
    """

    def __init__(self, port: int | None = None, data_dir: Path | None = None, options: Sequence[str] = ()) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.data_dir = data_dir
        self.options = options  # more of redis-server's command-line options
        self._process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        command = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
        if self.data_dir is None:
            command += ["--appendonly", "no"]
        else:
            command += ["--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self.data_dir)]
        self._process = subprocess.Popen([*command, *self.options], stdout=subprocess.DEVNULL)
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


class RedisClusterServer:
    """A Redis Cluster of `masters` redis-servers on loopback (no replicas), the slots shared evenly
    among them by redis-cli. `url` lists every node, as GATEWAY_REDIS_URL may."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.nodes = [
            RedisServer(options=self._options(directory / f"nodes-{number}.conf")) for number in range(masters)
        ]
        self.url = ",".join(node.url.removesuffix("/0") for node in self.nodes)

    def start(self) -> RedisClusterServer:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
        )
        wait_until(lambda: all(self._serves_every_slot(node) for node in self.nodes))
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    @staticmethod
    def _options(node_file: Path) -> list[str]:
        return [
            *("--cluster-enabled", "yes", "--cluster-port", str(free_port()), "--cluster-config-file", str(node_file)),
            # As docs/operations.md advises: a master lost serves none of its slots, the others all of theirs.
            *("--cluster-require-full-coverage", "no"),
        ]

    @staticmethod
    def _serves_every_slot(node: RedisServer) -> bool:
        with redis.Redis.from_url(node.url) as client:
            return client.cluster("INFO").get("cluster_state") == "ok"


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


class WebServer:
    """The production launcher (python -m llmapi.server) and its worker processes, on one port.

    `stop()` sends SIGTERM (the launcher drains its workers) and waits; `start()` again serves
    on the same port, as a rolling restart does.
    """

    def __init__(self, workers: int, env: dict[str, str]) -> None:
        self.workers = workers
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.address = f"127.0.0.1:{self.port}"
        self._env = {**os.environ, "DATABASE_URL": database_url_of_tests(), "DEBUG": "0", "LOG_LEVEL": "WARNING", **env}
        self.process: subprocess.Popen | None = None

    def start(self) -> WebServer:
        command = [sys.executable, "-m", "llmapi.server", "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, "--workers", str(self.workers)], cwd=PROJECT_DIR, env=self._env, start_new_session=True
        )
        wait_for_http(self.base_url + "/readyz", self.process, timeout=120)
        wait_until(lambda: len(self.worker_pids()) == self.workers and all_listening(self.port, self.workers), 120)
        return self

    def stop(self, timeout: float = 40) -> int:
        """SIGTERM, as systemd stops a service; the launcher's exit code."""
        assert self.process is not None
        self.process.terminate()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(self.process)
            raise
        finally:
            self.process = None

    def worker_pids(self) -> list[int]:
        """The uvicorn workers: the launcher's children, less multiprocessing's resource tracker."""
        assert self.process is not None
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [
            int(child) for child in children if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()
        ]


def is_resource_tracker(pid: str) -> bool:
    return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()


@contextmanager
def web_server(workers: int, **env: str) -> Iterator[WebServer]:
    """`python -m llmapi.server` on the test database, as production runs it; `env` overrides settings."""
    server = WebServer(workers, env)
    try:
        yield server.start()
    finally:
        if server.process is not None:
            server.stop()


def all_listening(port: int, count: int) -> bool:
    """True once `count` sockets listen on `port` (each worker has its own)."""
    return sum(1 for _ in listening_socket_inodes(port)) >= count


def listening_socket_inodes(port: int, state: str = "0A") -> Iterator[str]:
    """Inodes of the loopback TCP sockets on local `port` in `state` (0A: listening, 01: established)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state:
            yield fields[9]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_TEMPLATE = PROJECT_DIR / "deploy" / "nginx" / "llmapi.conf.template"


class NginxServer:
    """The real nginx with the repository's configuration, in front of `upstream_address`.

    Runs as a child (not a daemon) from a private prefix, with a self-signed certificate for
    127.0.0.1 and the ports and timeouts a test gives; everything else is the file as shipped.
    """

    def __init__(self, directory: Path, upstream_addresses: list[str], timeouts: dict[str, str]) -> None:
        if not Path(NGINX).exists():
            raise RuntimeError("nginx is not installed: apt-get install -y nginx-light")
        self.directory = directory
        self.https_port = free_port()
        self.http_port = free_port()
        self.base_url = f"https://127.0.0.1:{self.https_port}"
        self.certificate = directory / "certificate.pem"
        self.error_log = directory / "error.log"
        key = directory / "key.pem"
        write_self_signed_certificate(self.certificate, key)
        self.site = directory / "llmapi.conf"
        self.site.write_text(
            render_site(upstream_addresses, self.certificate, key, self.https_port, self.http_port, timeouts)
        )
        (directory / "nginx.conf").write_text(self._main_configuration())
        self._process: subprocess.Popen | None = None

    def _main_configuration(self) -> str:
        temp = "".join(
            f"    {kind}_temp_path {self.directory / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        user = "user root;\n" if os.geteuid() == 0 else ""
        return (
            f"{user}daemon off;\nworker_processes 1;\npid {self.directory / 'nginx.pid'};\n"
            f"error_log {self.directory / 'error.log'} warn;\n"
            "events { worker_connections 512; }\n"
            "http {\n    access_log off;\n"
            f"{temp}"
            # An operator's broad gzip setting: the site must still never compress its API answers.
            "    gzip on;\n    gzip_types text/event-stream application/json;\n"
            f"    include {self.site};\n}}\n"
        )

    def start(self) -> NginxServer:
        self._process = subprocess.Popen(
            [
                NGINX,
                "-p",
                str(self.directory),
                "-c",
                str(self.directory / "nginx.conf"),
                "-e",
                str(self.directory / "error.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_until(self._accepts)
        return self

    def take_out(self, address: str) -> None:
        """Mark one web server `down` and reload, as docs/operations.md's rolling restart does."""
        self._edit_site(f"server {address};", f"server {address} down;")

    def put_back(self, address: str) -> None:
        self._edit_site(f"server {address} down;", f"server {address};")

    def _edit_site(self, line: str, replacement: str) -> None:
        site = self.site.read_text()
        assert site.count(line) == 1, f"{line!r} is not in the site once"
        self.site.write_text(site.replace(line, replacement))
        self.reload()

    def reload(self) -> None:
        """nginx -s reload, then wait until a worker of the new configuration runs."""
        assert self._process is not None
        before = set(self._worker_pids())
        subprocess.run(
            [NGINX, "-p", str(self.directory), "-c", str(self.directory / "nginx.conf"), "-s", "reload"],
            check=True,
            capture_output=True,
        )
        wait_until(lambda: bool(set(self._worker_pids()) - before))

    def _worker_pids(self) -> list[str]:
        assert self._process is not None
        pid = self._process.pid
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()

    def _accepts(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"nginx exited: {self._process.stderr.read().decode() if self._process.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", self.https_port), timeout=1).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            if self._process.stderr is not None:
                self._process.stderr.close()
            self._process = None


def render_site(
    upstream_addresses: list[str],
    certificate: Path,
    key: Path,
    https_port: int,
    http_port: int,
    timeouts: dict[str, str],
) -> str:
    """The shipped template with envsubst's substitutions, loopback ports and the test's timeouts.

    Several `upstream_addresses` become a `server` line each, as docs/operations.md says to write
    them for several web processes. `timeouts` maps directives as shipped
    (`client_header_timeout 10s;`) to the test's.
    """
    servers = "\n    ".join(f"server {address};" for address in upstream_addresses)
    site = NGINX_TEMPLATE.read_text().replace("server ${LLMAPI_WEB_ADDRESS};", servers)
    site = string.Template(site).safe_substitute(
        LLMAPI_SERVER_NAME="localhost",
        LLMAPI_TLS_CERTIFICATE=str(certificate),
        LLMAPI_TLS_CERTIFICATE_KEY=str(key),
    )
    site = re.sub(r"\n\s*listen \[::\]:\d+[^;]*;", "", site)
    site = site.replace("listen 443 ", f"listen 127.0.0.1:{https_port} ").replace(
        "listen 80;", f"listen 127.0.0.1:{http_port};"
    )
    for shipped, replacement in timeouts.items():
        if site.count(shipped) != 1:
            raise ValueError(f"{shipped!r} is not in {NGINX_TEMPLATE} exactly once")
        site = site.replace(shipped, replacement)
    return site


def write_self_signed_certificate(certificate_path: Path, key_path: Path) -> None:
    from datetime import UTC, datetime, timedelta
    from ipaddress import IPv4Address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


class TcpProxy:
    """A loopback TCP relay a test can cut and restore: to its clients, the server behind it
    stops (connections reset, new ones refused) and comes back, while the server itself runs on
    for the rest of the suite."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> TcpProxy:
        self._thread.start()
        self.restore()
        return self

    def restore(self) -> None:
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)

    def cut(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)

    def stop(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port, reuse_address=True)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, server_writer}
        await asyncio.gather(
            self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
