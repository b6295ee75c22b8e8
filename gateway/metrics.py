"""Prometheus metrics of the web processes, at GET /metrics for a scraper that holds METRICS_TOKEN.

Under the production launcher (llmapi/server.py) the workers share a directory of
prometheus-client's multiprocess files (PROMETHEUS_MULTIPROC_DIR, made fresh at each start):
each worker writes its own values there, and whichever worker a scrape reaches adds them all up,
so that the workers report as one service. Elsewhere (runserver, a test's server thread) the
values live in the process.

What a finished request leaves is counted by the request log's thread (gateway/request_log.py),
never on the request's own path; only the open-stream gauge changes where a stream starts and
ends. The usage backlog and drain lag are read from Redis when scraped. No label takes a value a
client can choose freely: model names are capped per process (MAX_MODEL_LABELS), paths are
reduced to the endpoint's name.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from gateway.http import Receive, Scope, Send, send_whole
from gateway.key_usage import KEY_USAGE_PATH
from gateway.redis_clients import gateway_redis_url, sync_gateway_redis
from gateway.redis_keys import all_shards, usage_stream_key

if TYPE_CHECKING:
    from gateway.request_log import RequestOutcome

METRICS_PATH = "/metrics"
TEXT = b"text/plain; charset=utf-8"
MAX_MODEL_LABELS = 100  # distinct model names per process; past them, "other"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
ENDPOINTS = {
    "/v1/messages": "messages",
    "/v1/messages/count_tokens": "count_tokens",
    "/v1/models": "models",
    KEY_USAGE_PATH: "key_usage",
}

REQUESTS = Counter("llmapi_requests", "Requests the gateway answered.", ["endpoint", "status", "model", "backend"])
REQUEST_DURATION = Histogram(
    "llmapi_request_duration_seconds",
    "Time from a request's arrival to the end of its answer.",
    ["endpoint", "stream"],
    buckets=LATENCY_BUCKETS,
)
FIRST_TOKEN = Histogram(
    "llmapi_time_to_first_token_seconds",
    "Time from a message's arrival to the first token of its answer.",
    ["backend"],
    buckets=LATENCY_BUCKETS,
)
LIMITER_DECISIONS = Counter(
    "llmapi_limiter_decisions",
    "The limiter's decisions: admitted, refused, or admitted unchecked (Redis unreachable, failing open).",
    ["mode", "outcome"],
)
UPSTREAM_FAILURES = Counter("llmapi_upstream_failures", "Backend attempts that failed, by why.", ["backend", "reason"])
OPEN_STREAMS = Gauge("llmapi_open_streams", "Streams being relayed now.", multiprocess_mode="livesum")
CIRCUIT_OPEN_UNTIL = Gauge(
    "llmapi_backend_circuit_open_until_seconds",
    "Unix time until which a backend is taken out after consecutive failures (0: closed).",
    ["backend"],
    multiprocess_mode="livemax",
)
CREDENTIAL_RESTING_UNTIL = Gauge(
    "llmapi_credential_resting_until_seconds",
    "Unix time until which an upstream credential rests after a 429, 529 or 401.",
    ["credential"],
    multiprocess_mode="livemax",
)

_model_labels: set[str] = set()


def metrics_enabled() -> bool:
    return bool(settings.METRICS_TOKEN)


def count_finished_requests(outcomes: Iterable[RequestOutcome]) -> None:
    """Count what each finished request left (called from the request log's thread)."""
    for outcome in outcomes:
        endpoint = endpoint_of(outcome.path)
        record = outcome.record
        backend = record.upstream if record is not None else ""
        model = model_label(record.requested_model) if record is not None and backend else ""
        REQUESTS.labels(endpoint, str(outcome.status), model, backend).inc()
        stream = "true" if record is not None and record.stream else "false"
        REQUEST_DURATION.labels(endpoint, stream).observe(outcome.ended - outcome.started)
        if record is not None and record.time_to_first_token_ms is not None:
            FIRST_TOKEN.labels(backend).observe(record.time_to_first_token_ms / 1000)
        if outcome.limiter_outcome:
            LIMITER_DECISIONS.labels(outcome.limiter_mode, outcome.limiter_outcome).inc()


def endpoint_of(path: str) -> str:
    if path in ENDPOINTS:
        return ENDPOINTS[path]
    return "models" if path.startswith("/v1/models/") else "other"


def model_label(model: str) -> str:
    if model in _model_labels:
        return model
    if len(_model_labels) >= MAX_MODEL_LABELS:
        return "other"
    _model_labels.add(model)
    return model


def upstream_failed(backend: str, reason: str) -> None:
    UPSTREAM_FAILURES.labels(backend, reason).inc()


def circuit_opened(backend: str, until_monotonic: float) -> None:
    CIRCUIT_OPEN_UNTIL.labels(backend).set(wall_clock(until_monotonic))


def circuit_closed(backend: str) -> None:
    CIRCUIT_OPEN_UNTIL.labels(backend).set(0)


def credential_resting(credential_id: int, until_monotonic: float) -> None:
    CREDENTIAL_RESTING_UNTIL.labels(str(credential_id)).set(wall_clock(until_monotonic))


def wall_clock(monotonic_time: float) -> float:
    return time.time() + (monotonic_time - time.monotonic())


class UsageBacklog(Collector):
    """The usage stream, read when scraped: entries waiting, and the age of the oldest (the drain's lag)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from gateway.limits import UNREACHABLE

        entries = GaugeMetricFamily("llmapi_usage_backlog_entries", "Usage stream entries not yet drained.")
        lag = GaugeMetricFamily("llmapi_usage_drain_lag_seconds", "Age of the oldest usage entry not yet drained.")
        try:
            total, oldest_ms = _usage_backlog()
        except UNREACHABLE:
            return  # Redis away: /readyz says so, and the scrape still gives everything else
        entries.add_metric([], total)
        lag.add_metric([], 0.0 if oldest_ms is None else max(0.0, time.time() - oldest_ms / 1000))
        yield entries
        yield lag


def _usage_backlog() -> tuple[int, int | None]:
    """Entries in the usage streams, and when the oldest was written (ms since the epoch)."""
    total, oldest_ms = 0, None
    # A cluster client connects as it is made: inside the caller's try, like every command.
    with sync_gateway_redis(socket_timeout=1.0, socket_connect_timeout=1.0) as client:
        for shard in all_shards():
            key = usage_stream_key(shard)
            total += client.xlen(key)
            if first := client.xrange(key, count=1):
                first_ms = int(first[0][0].split(b"-")[0])
                oldest_ms = first_ms if oldest_ms is None else min(oldest_ms, first_ms)
    return total, oldest_ms


def build_registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY as registry  # noqa: N811 (this process's own values)
    return registry


_registry: CollectorRegistry | None = None
_scrape_thread: ThreadPoolExecutor | None = None


def exposition() -> bytes:
    """The text a scraper reads (in a thread: it reads files and asks Redis)."""
    global _registry
    if _registry is None:
        _registry = build_registry()
        if gateway_redis_url():
            _registry.register(UsageBacklog())
    return generate_latest(_registry)


async def metrics_application(scope: Scope, receive: Receive, send: Send) -> None:
    global _scrape_thread  # one per process, made on first use
    if not metrics_enabled():
        await send_whole(send, 404, b"Not found.\n", TEXT)
    elif scope["method"] != "GET":
        await send_whole(send, 405, b"Use GET.\n", TEXT, [(b"allow", b"GET")])
    elif not _holds_token(scope):
        await send_whole(send, 401, b"Send the metrics token: Authorization: Bearer <METRICS_TOKEN>.\n", TEXT)
    else:
        if _scrape_thread is None:
            _scrape_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics")
        body = await asyncio.get_running_loop().run_in_executor(_scrape_thread, exposition)
        await send_whole(send, 200, body, CONTENT_TYPE_LATEST.encode())


def _holds_token(scope: Scope) -> bool:
    expected = b"Bearer " + settings.METRICS_TOKEN.encode()
    given = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
    return hmac.compare_digest(given, expected)
