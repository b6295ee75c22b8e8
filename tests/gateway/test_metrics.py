"""Prometheus metrics (issue 16): counts that match known traffic, two workers reporting as one
service, a scrape endpoint only the token opens, and alert rules promtool accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.usage.drain import drain_usage_stream
from tests.helpers import PROJECT_DIR, wait_until
from tests.servers import WebServer, web_server

TOKEN = "test-metrics-token"
SCRAPE = {"authorization": f"Bearer {TOKEN}"}
HELLO = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello"}]}
ALERT_RULES = PROJECT_DIR / "deploy" / "prometheus" / "llmapi-alerts.yml"
ALERT_TESTS = PROJECT_DIR / "deploy" / "prometheus" / "llmapi-alerts.test.yml"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str) -> Samples:
    response = httpx.get(base_url + "/metrics", headers=SCRAPE, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, /, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def messages_answered(samples: Samples, status: str, model: str = "claude-sonnet-4-6", backend: str = "sim") -> float:
    return value(samples, "llmapi_requests_total", endpoint="messages", status=status, model=model, backend=backend)


def send_on_new_connections(base_url: str, key: str, count: int, **fields: object) -> list[httpx.Response]:
    """Each request on a connection of its own, so that the kernel spreads them over the workers."""
    responses = []
    for _ in range(count):
        with httpx.Client(timeout=30) as client:
            responses.append(
                client.post(base_url + "/v1/messages", json={**HELLO, **fields}, headers={"x-api-key": key})
            )
    return responses


@pytest.fixture
def web(unlimited, tmp_path) -> WebServer:
    with web_server(workers=2, METRICS_TOKEN=TOKEN, PROMETHEUS_MULTIPROC_DIR=str(tmp_path)) as server:
        yield server


def test_two_workers_report_known_traffic_as_one_service(unlimited, web, tmp_path, stream_client):
    messages = send_on_new_connections(web.base_url, unlimited.key, 30)
    streams = send_on_new_connections(web.base_url, unlimited.key, 10, stream=True)
    refused = send_on_new_connections(web.base_url, "sk-llmapi-not-a-real-key", 3)
    assert [response.status_code for response in messages + streams] == [200] * 40
    assert [response.status_code for response in refused] == [401] * 3

    def all_counted() -> bool:
        samples = scrape(web.base_url)
        return messages_answered(samples, "200") == 40 and messages_answered(samples, "401", model="", backend="") == 3

    wait_until(all_counted)
    writers = {path.stem.rsplit("_", 1)[1] for path in tmp_path.glob("counter_*.db")}
    assert writers == {str(pid) for pid in web.worker_pids()}  # both workers served, and counted
    samples = scrape(web.base_url)
    for _ in range(4):  # whichever worker answers, the counts are the service's
        again = scrape(web.base_url)
        assert messages_answered(again, "200") == 40
        assert messages_answered(again, "401", model="", backend="") == 3
    assert value(samples, "llmapi_request_duration_seconds_count", endpoint="messages", stream="false") == 33
    assert value(samples, "llmapi_request_duration_seconds_count", endpoint="messages", stream="true") == 10
    assert value(samples, "llmapi_time_to_first_token_seconds_count", backend="sim") == 10
    assert value(samples, "llmapi_limiter_decisions_total", mode="admit", outcome="admitted") == 40
    assert value(samples, "llmapi_limiter_decisions_total", mode="admit", outcome="unchecked") == 0
    assert value(samples, "llmapi_open_streams") == 0

    wait_until(lambda: value(scrape(web.base_url), "llmapi_usage_backlog_entries") >= 40)
    assert value(scrape(web.base_url), "llmapi_usage_drain_lag_seconds") > 0
    drain_usage_stream(client=stream_client)
    drained = scrape(web.base_url)
    assert value(drained, "llmapi_usage_backlog_entries") == 0
    assert value(drained, "llmapi_usage_drain_lag_seconds") == 0


def test_only_the_token_opens_the_metrics(web):
    assert httpx.get(web.base_url + "/metrics").status_code == 401
    assert httpx.get(web.base_url + "/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(web.base_url + "/metrics", headers=SCRAPE).status_code == 405
    assert TOKEN not in httpx.get(web.base_url + "/metrics", headers=SCRAPE).text


def test_without_a_token_there_are_no_metrics(gateway, settings):
    settings.METRICS_TOKEN = ""
    assert httpx.get(gateway.base_url + "/metrics", headers={"authorization": "Bearer x"}).status_code == 404


def test_backend_failures_and_states_are_counted(gateway, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.GATEWAY_CIRCUIT_FAILURES = 1
    before = scrape(gateway.base_url)
    headers = {"x-api-key": gateway.key, "x-simulator-scenario": "server_error"}
    assert httpx.post(gateway.base_url + "/v1/messages", json=HELLO, headers=headers).status_code == 500
    after = scrape(gateway.base_url)
    failures = "llmapi_upstream_failures_total"
    assert (
        value(after, failures, backend="sim", reason="500") - value(before, failures, backend="sim", reason="500") == 1
    )
    assert value(after, "llmapi_backend_circuit_open_until_seconds", backend="sim") > 0
    # No backend answered it well: the request counts under no backend.
    unanswered = {"status": "500", "model": "", "backend": ""}
    wait_until(
        lambda: messages_answered(scrape(gateway.base_url), **unanswered) > messages_answered(before, **unanswered)
    )


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_alert_rules_and_their_tests():
    checked = subprocess.run(["promtool", "check", "rules", str(ALERT_RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        ["promtool", "test", "rules", ALERT_TESTS.name], cwd=ALERT_TESTS.parent, capture_output=True, text=True
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_alert_rules_name_only_metrics_the_service_exports():
    rules = ALERT_RULES.read_text()
    exported = Path(PROJECT_DIR / "gateway" / "metrics.py").read_text()
    for name in ("llmapi_requests", "llmapi_backend_circuit_open_until_seconds", "llmapi_usage_drain_lag_seconds"):
        assert name in rules
        assert f'"{name}"' in exported
    assert "llmapi_limiter_decisions_total" in rules
