"""The production web server: N uvicorn workers, each on its own SO_REUSEPORT socket, with limits.

    uv run python -m llmapi.server [--host H] [--port P] [--workers N]

uvicorn's own `--workers` shares one listening socket among its workers, and whichever worker
wakes first takes the connection: one worker carried 0.89 of the 1.00 cores in use in the
benchmark. Here each worker listens on a socket of its own bound to the same address
(SO_REUSEPORT), and the kernel spreads new connections across them evenly.

Each worker bounds what a client can make it hold, whether or not nginx is in front
(docs/operations.md): the request head (httptools, unlike h11, has no size limit of its own) and
the time to send it, idle keep-alive connections, concurrent connections, and whom to believe
about the client's address (TRUSTED_PROXIES only, never uvicorn's default of 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

APPLICATION = "llmapi.asgi:application"
WORKER_STOP_MARGIN_SECONDS = 15.0  # past the grace period: for the flush of usage and request lines
WORKER_MINIMUM_LIFE_SECONDS = 60.0  # a worker that dies sooner is not started again

logger = logging.getLogger("llmapi.server")


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a ceiling on the request head's size and time.

    httptools keeps appending a header's bytes for as long as they come (ten 100 MB header lines
    took two workers to 1 GB). Here a head larger than `max_head_bytes` is answered 431 and the
    connection closed; a head not complete within `head_timeout` (slowloris, or a connection
    opened and left silent) is closed. Idle keep-alive between requests is uvicorn's
    `timeout_keep_alive`.
    """

    max_head_bytes = 256 * 1024
    head_timeout = 30.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[arg-type]
        self._head_bytes = 0
        self._reading_head = True
        self._head_timer: asyncio.TimerHandle | None = None
        self._start_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: a head that ended within this chunk followed by body bytes is fine.
        # The parser has then buffered at most the limit plus one read.
        if self._reading_head and self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
            self._refuse_large_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # the next request on a kept-alive connection
            self._start_head_timer()

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._reading_head and not self.transport.is_closing():
            self.transport.close()

    def _refuse_large_head(self) -> None:
        message = b"Request header fields too large."
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"connection: close\r\n"
            b"content-length: " + str(len(message)).encode() + b"\r\n\r\n" + message
        )
        self.transport.close()


@dataclass(frozen=True)
class ServerOptions:
    host: str
    port: int
    workers: int
    backlog: int
    limit_concurrency: int
    keep_alive_seconds: float
    max_head_bytes: int
    head_timeout_seconds: float
    grace_seconds: float
    trusted_proxies: tuple[str, ...]


def options_from_settings(arguments: argparse.Namespace) -> ServerOptions:
    from django.conf import settings

    return ServerOptions(
        host=arguments.host or settings.WEB_HOST,
        port=arguments.port if arguments.port is not None else settings.WEB_PORT,
        workers=arguments.workers or settings.WEB_WORKERS,
        backlog=settings.WEB_BACKLOG,
        limit_concurrency=settings.WEB_LIMIT_CONCURRENCY,
        keep_alive_seconds=settings.WEB_KEEPALIVE_SECONDS,
        max_head_bytes=settings.WEB_MAX_HEADER_BYTES,
        head_timeout_seconds=settings.WEB_HEADER_TIMEOUT_SECONDS,
        grace_seconds=settings.WEB_GRACE_SECONDS,
        trusted_proxies=tuple(settings.TRUSTED_PROXIES),
    )


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A socket of this worker's own in the address's SO_REUSEPORT group."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def uvicorn_config(options: ServerOptions) -> Any:
    import uvicorn

    protocol = type(
        "ConfiguredHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {"max_head_bytes": options.max_head_bytes, "head_timeout": options.head_timeout_seconds},
    )
    return uvicorn.Config(
        APPLICATION,
        loop="uvloop",
        http=protocol,
        ws="none",
        lifespan="on",
        backlog=options.backlog,
        limit_concurrency=options.limit_concurrency,
        timeout_keep_alive=int(options.keep_alive_seconds),
        timeout_graceful_shutdown=options.grace_seconds,  # type: ignore[arg-type]  (a float works)
        # Only the configured proxies may name the client (X-Forwarded-For/-Proto); with none, the
        # TCP peer is the client. uvicorn would otherwise trust 127.0.0.1 by default.
        proxy_headers=bool(options.trusted_proxies),
        forwarded_allow_ips=list(options.trusted_proxies),
        server_header=False,
        access_log=False,
        log_level=os.environ.get("LOG_LEVEL", "INFO").lower(),
    )


def draining_server(config: Any) -> Any:
    """A uvicorn server that tells the gateway when it starts draining (gateway/shutdown.py)."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            from gateway.shutdown import shutdown_state

            shutdown_state.begin_draining()
            super().handle_exit(sig, frame)

    return DrainingServer(config)


def run_worker(options: ServerOptions) -> None:
    """One worker process: its own socket, one uvicorn server, until SIGTERM/SIGINT.

    On SIGTERM uvicorn closes the socket, closes idle connections, lets open requests finish for
    up to the grace period, cancels the rest, then runs the lifespan's shutdown (usage flushed).
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmapi.settings")
    sock = listening_socket(options.host, options.port, options.backlog)
    draining_server(uvicorn_config(options)).run(sockets=[sock])


class Supervisor:
    """Starts the workers, starts a new one when one dies, and stops them all on SIGTERM/SIGINT."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.context = multiprocessing.get_context("spawn")  # fresh interpreters: nothing inherited
        self.workers: list[BaseProcess] = []
        self.started_at: dict[int | None, float] = {}
        self.stopping = False
        self.failed = False

    def run(self) -> int:
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signal_number, self._stop)
        self.workers = [self._start_worker() for _ in range(self.options.workers)]
        logger.info(
            "serving %s on http://%s:%s with %d workers (one SO_REUSEPORT socket each)",
            APPLICATION,
            self.options.host,
            self.options.port,
            self.options.workers,
        )
        while not self.stopping:
            wait([worker.sentinel for worker in self.workers], timeout=1.0)
            self._replace_dead_workers()
        self._stop_workers()
        return 1 if self.failed else 0

    def _start_worker(self) -> BaseProcess:
        worker = self.context.Process(target=run_worker, args=(self.options,), name="llmapi-web-worker")
        worker.start()
        self.started_at[worker.pid] = time.monotonic()
        return worker

    def _replace_dead_workers(self) -> None:
        for index, worker in enumerate(self.workers):
            if worker.exitcode is None or self.stopping:
                continue
            forget_metrics_of(worker.pid)
            lived = time.monotonic() - self.started_at.pop(worker.pid, 0.0)
            if lived < WORKER_MINIMUM_LIFE_SECONDS:
                # Dying at once is a configuration fault; starting it again would only loop.
                logger.error("worker %s failed to start (exit %s); stopping", worker.pid, worker.exitcode)
                self.stopping = True
                self.failed = True
                return
            logger.error("worker %s exited with %s; starting another", worker.pid, worker.exitcode)
            self.workers[index] = self._start_worker()

    def _stop(self, _signal_number: int, _frame: object) -> None:
        self.stopping = True

    def _stop_workers(self) -> None:
        for worker in self.workers:
            if worker.exitcode is None and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)  # uvicorn finishes the requests in flight
        deadline = time.monotonic() + self.options.grace_seconds + WORKER_STOP_MARGIN_SECONDS
        for worker in self.workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.exitcode is None:
                worker.kill()
                worker.join()


def prepare_metrics_directory() -> Path | None:
    """The directory the workers share their metrics in (gateway/metrics.py), emptied: values of
    an earlier run must not count. Made here unless PROMETHEUS_MULTIPROC_DIR names one; returns
    the directory made, for removal at exit."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        return None
    made = Path(tempfile.mkdtemp(prefix="llmapi-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(made)  # the workers inherit it
    return made


def forget_metrics_of(pid: int | None) -> None:
    """A dead worker's open streams and backend states no longer hold (its counters still count)."""
    from prometheus_client import multiprocess

    if pid is not None:
        multiprocess.mark_process_dead(pid)


def check_address_is_free(options: ServerOptions) -> None:
    """Fail at once, with a clear message, when something else holds the address."""
    try:
        listening_socket(options.host, options.port, 1).close()
    except OSError as exc:
        raise SystemExit(f"cannot listen on {options.host}:{options.port}: {exc.strerror}") from None


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m llmapi.server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="address to listen on [WEB_HOST]")
    parser.add_argument("--port", type=int, help="port to listen on [WEB_PORT]")
    parser.add_argument("--workers", type=int, help="worker processes [WEB_WORKERS]")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmapi.settings")
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    options = options_from_settings(arguments)  # a bad setting fails here, before any worker starts
    if options.port == 0:
        raise SystemExit("give a port: with port 0 each worker would listen on a different one")
    if options.workers < 1:
        raise SystemExit("--workers must be at least 1")
    check_address_is_free(options)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    metrics_directory = prepare_metrics_directory()
    try:
        return Supervisor(options).run()
    finally:
        if metrics_directory is not None:
            shutil.rmtree(metrics_directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
