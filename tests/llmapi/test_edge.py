"""The production edge: the real nginx with the repository's configuration, in front of the
production launcher (python -m llmapi.server) and its workers, as docs/operations.md runs them.

nginx runs with 1-second client timeouts here (production: 10 to 65 s) so that the tests of slow
and idle clients end soon; everything else is the shipped file.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from keys import keyformat
from tests.helpers import wait_until
from tests.servers import NginxServer, WebServer, listening_socket_inodes, rss_bytes, web_server

HELLO = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello"}]}
WORKERS = 2
SPOOFING_CLIENT = "127.0.0.3"  # an address of its own, so that its throttling touches no other test
HUGE_HEADER_BYTES = 100 * 1024 * 1024
RSS_GROWTH_ALLOWED = 16 * 1024 * 1024
TEST_TIMEOUTS = {
    "client_header_timeout 10s;": "client_header_timeout 1s;",
    "client_body_timeout 30s;": "client_body_timeout 1s;",
    "keepalive_timeout 65s;": "keepalive_timeout 1s;",
}


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker) -> Iterator[WebServer]:
    with web_server(workers=WORKERS, TRUSTED_PROXIES="127.0.0.1", WEB_HEADER_TIMEOUT_SECONDS="1") as server:
        yield server


@pytest.fixture(scope="module")
def nginx(web: WebServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxServer]:
    server = NginxServer(tmp_path_factory.mktemp("nginx"), [web.address], TEST_TIMEOUTS).start()
    yield server
    server.stop()


def tls_context(nginx: NginxServer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(nginx.certificate))


@contextmanager
def connection(port: int, context: ssl.SSLContext | None = None) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname="localhost")
    with sock:
        yield sock


def send_huge_header(sock: socket.socket) -> bytes:
    """Send a request whose one header line is 100 MB, until the server answers or hangs up."""
    sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nX-Filler: ")
    chunk = b"a" * 65536
    sent = 0
    received = None
    while sent < HUGE_HEADER_BYTES and received is None:
        try:
            sock.sendall(chunk)
        except OSError:
            break
        sent += len(chunk)
        received = received_so_far(sock)
    return (received or b"") + read_until_closed(sock)


def received_so_far(sock: socket.socket) -> bytes | None:
    """What the server has sent (b"" once it has closed), without waiting; None while it says nothing.

    (select() would not do: with TLS 1.3 the server's session tickets make a socket readable.)
    """
    sock.settimeout(0)
    try:
        return sock.recv(65536)
    except (ssl.SSLWantReadError, BlockingIOError):
        return None
    except OSError:
        return b""
    finally:
        sock.settimeout(30)


def read_until_closed(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection; fails if it never does."""
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            pytest.fail(f"the server kept the connection open (received {received[:200]!r})")
        except OSError:  # reset: closed too
            return received
        if not chunk:
            return received
        received += chunk


def status_of(raw_response: bytes) -> int:
    return int(raw_response.split(b" ", 2)[1])


def workers_rss(web: WebServer) -> int:
    return sum(rss_bytes(pid) for pid in web.worker_pids())


def test_a_stream_comes_through_event_by_event_uncompressed(gateway, nginx):
    headers = {
        "x-api-key": gateway.key,
        "accept-encoding": "gzip",
        "x-simulator-scenario": "slow",
        "x-simulator-deltas": "2",
        "x-simulator-delay-ms": "600000",  # the upstream waits ten minutes before its first delta
    }
    events = []
    with (
        httpx.Client(verify=tls_context(nginx), timeout=60) as client,
        client.stream(
            "POST", f"{nginx.base_url}/v1/messages", json={**HELLO, "stream": True}, headers=headers
        ) as reply,
    ):
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in reply.headers
        for line in reply.iter_lines():
            if line.startswith("event: "):
                events.append(line.removeprefix("event: "))
            if "content_block_start" in events:
                break
    # Everything the upstream had sent arrived while it still held back the rest: nothing buffered.
    assert events == ["message_start", "ping", "content_block_start"]
    # The client left: nginx closes its upstream connection, and the gateway cancels the backend's stream.
    wait_until(lambda: gateway.simulator.stats()["cancelled_streams"] == 1)


def test_the_client_address_is_the_peer_whatever_the_client_claims(gateway, nginx, settings):
    """Made-up keys under an X-Forwarded-For and X-Real-IP that change every time are still all
    counted against the client's real address: nginx passes on the peer, never what the client
    claimed, so the failed-authentication throttle (per worker) catches it. (The gateway itself
    forwards none of these headers to a backend.)"""
    transport = httpx.HTTPTransport(local_address=SPOOFING_CLIENT, verify=tls_context(nginx))
    attempts_that_must_reach_a_throttle = WORKERS * settings.GATEWAY_AUTH_FAILURES_PER_MINUTE + 1
    statuses = []
    with httpx.Client(base_url=nginx.base_url, transport=transport, timeout=30) as client:
        for number in range(attempts_that_must_reach_a_throttle):
            claimed = f"198.51.100.{number % 250}"
            headers = {"x-api-key": keyformat.generate_key(), "x-forwarded-for": claimed, "x-real-ip": claimed}
            statuses.append(client.post("/v1/messages", json=HELLO, headers=headers).status_code)
            if statuses[-1] == 429:
                break
    assert set(statuses[:-1]) == {401}
    assert statuses[-1] == 429
    assert gateway.simulator.requests() == []


def test_a_100_mb_header_is_refused_by_nginx_and_never_reaches_a_worker(gateway, nginx, web):
    before = workers_rss(web)
    with connection(nginx.https_port, tls_context(nginx)) as sock:
        answer = send_huge_header(sock)
    assert status_of(answer) in {400, 431}
    assert workers_rss(web) - before < RSS_GROWTH_ALLOWED
    assert gateway.simulator.requests() == []


def test_a_100_mb_header_sent_straight_to_a_worker_gets_431(web):
    before = workers_rss(web)
    with connection(web.port) as sock:
        answer = send_huge_header(sock)
    assert status_of(answer) == 431
    assert workers_rss(web) - before < RSS_GROWTH_ALLOWED


def test_a_body_over_32_mb_is_refused_by_nginx_in_anthropics_shape(gateway, nginx):
    with connection(nginx.https_port, tls_context(nginx)) as sock:
        sock.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"x-api-key: " + gateway.key.encode() + b"\r\nContent-Length: 40000000\r\n\r\n"
        )
        answer = read_until_closed(sock)
    assert status_of(answer) == 413
    assert b'"type":"request_too_large"' in answer
    assert b"request-id: req_" in answer


@pytest.mark.parametrize(
    "opening",
    [
        pytest.param(b"", id="idle-after-connecting"),
        pytest.param(b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nX-Slow: ", id="slow-header"),
        pytest.param(
            b'POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n{"model"',
            id="slow-body",
        ),
    ],
)
def test_slow_and_idle_clients_are_closed_by_nginx(gateway, nginx, opening):
    with connection(nginx.https_port, tls_context(nginx)) as sock:
        sock.sendall(opening)
        read_until_closed(sock)
    assert gateway.simulator.requests() == []


def test_an_idle_keep_alive_connection_is_closed_by_nginx(nginx):
    with connection(nginx.https_port, tls_context(nginx)) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = read_until_closed(sock)  # the answer (401: no key), then the close once idle
    assert status_of(answer) == 401


def test_a_worker_closes_a_slow_header_itself(web):
    with connection(web.port) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        assert read_until_closed(sock) == b""


def test_connections_are_spread_over_every_worker(web):
    with ExitStack() as stack:
        connections = [stack.enter_context(connection(web.port)) for _ in range(32)]
        for sock in connections:
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 401")
        established = set(listening_socket_inodes(web.port, state="01"))
        per_worker = {pid: len(socket_inodes_of(pid) & established) for pid in web.worker_pids()}
    assert len(per_worker) == 2
    assert all(count > 0 for count in per_worker.values()), per_worker


def socket_inodes_of(pid: int) -> set[str]:
    inodes = set()
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = descriptor.readlink().name
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target.removeprefix("socket:[").removesuffix("]"))
    return inodes


def test_the_metrics_are_not_served_to_the_internet(nginx):
    with httpx.Client(verify=tls_context(nginx), timeout=10) as client:
        reply = client.get(nginx.base_url + "/metrics", headers={"authorization": "Bearer anything"})
    assert reply.status_code == 404
    assert b"nginx" in reply.content  # nginx's own page: the request never reached a worker
