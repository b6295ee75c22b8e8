"""One log line per /v1 request (issue 16): what it says, what it never says, and a reader that stalls."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import orjson
import pytest

from gateway import request_log as request_log_module
from gateway.request_log import RequestLog, RequestOutcome, request_log
from keys import keyformat
from keys.models import ApiKey
from tests.helpers import wait_until

HELLO = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello"}]}


@pytest.fixture
def written(monkeypatch, settings) -> list[bytes]:
    """What the gateway's request log writes, as JSON lines."""
    settings.LOG_FORMAT = "json"
    settings.REQUEST_LOG = True
    chunks: list[bytes] = []
    monkeypatch.setattr(request_log, "_write", chunks.append)
    return chunks


def lines_of(chunks: list[bytes]) -> list[dict]:
    return [orjson.loads(line) for chunk in list(chunks) for line in chunk.splitlines()]


def line_of(chunks: list[bytes], request_id: str) -> dict:
    wait_until(lambda: any(line.get("request_id") == request_id for line in lines_of(chunks)))
    [line] = [line for line in lines_of(chunks) if line.get("request_id") == request_id]
    return line


def test_a_message_leaves_one_line_with_its_key_prefix_model_backend_and_tokens(gateway, written):
    response = httpx.post(gateway.base_url + "/v1/messages", json=HELLO, headers={"x-api-key": gateway.key})
    assert response.status_code == 200
    line = line_of(written, response.headers["request-id"])
    usage = response.json()["usage"]
    assert line["logger"] == "llmapi.requests"
    assert (line["method"], line["path"], line["status"]) == ("POST", "/v1/messages", 200)
    assert line["key"] == ApiKey.objects.get(user=gateway.user).prefix
    assert (line["model"], line["backend"], line["stream"]) == ("claude-sonnet-4-6", "sim", False)
    assert (line["input_tokens"], line["output_tokens"]) == (usage["input_tokens"], usage["output_tokens"])
    assert line["duration_ms"] >= 0.1  # a Redis round trip and an upstream's answer at least
    assert line["time"].endswith("Z")
    everything = b"".join(written)
    assert gateway.key.encode() not in everything
    assert gateway.key[-8:].encode() not in everything  # not even the key's secret part
    assert b"Hello" not in everything  # nor the prompt


def test_a_refused_key_leaves_a_line_without_it(gateway, written):
    unknown = keyformat.generate_key()
    response = httpx.get(gateway.base_url + "/v1/models", headers={"x-api-key": unknown})
    assert response.status_code == 401
    line = line_of(written, response.headers["request-id"])
    assert (line["path"], line["status"]) == ("/v1/models", 401)
    assert "key" not in line
    assert unknown[10:].encode() not in b"".join(written)


def test_a_stalled_reader_costs_a_bounded_number_of_lines_and_the_loss_is_told(monkeypatch, settings):
    monkeypatch.setattr(request_log_module, "MAX_WAITING_LINES", 100)
    settings.LOG_FORMAT = "plain"
    settings.REQUEST_LOG = True
    write_started, reader_back = threading.Event(), threading.Event()
    chunks: list[bytes] = []

    def stalled_write(data: bytes) -> None:
        write_started.set()
        reader_back.wait(timeout=30)
        chunks.append(data)

    log = RequestLog(write=stalled_write)

    def outcome(index: int) -> RequestOutcome:
        return RequestOutcome(f"req_{index}", "POST", "/v1/messages", time.perf_counter(), 200)

    async def requests_end() -> None:
        loop = asyncio.get_running_loop()
        log.add(outcome(0))
        await loop.run_in_executor(None, write_started.wait, 30)  # the first line's write, stalled
        for index in range(1, 350):
            log.add(outcome(index))
        reader_back.set()
        await loop.run_in_executor(None, wait_until, lambda: any(b"dropped_request_lines" in c for c in chunks))

    asyncio.run(requests_end())
    text = b"".join(chunks).decode()
    written_ids = {word.removeprefix("request_id=") for word in text.split() if word.startswith("request_id=")}
    dropped = int(text.split("dropped_request_lines=")[1].split()[0])
    assert (len(written_ids), dropped) == (101, 249)  # the stalled line, 100 waiting; the rest counted


def test_lines_still_waiting_are_written_at_shutdown(settings):
    settings.REQUEST_LOG, settings.LOG_FORMAT = True, "json"
    chunks: list[bytes] = []
    log = RequestLog(write=chunks.append)

    async def end_requests_then_shut_down() -> None:
        for number in range(3):
            log.add(RequestOutcome(f"req_{number}", "POST", "/v1/messages", time.perf_counter(), status=200))
        log.close()  # before the flush timer: nothing had been written yet

    asyncio.run(end_requests_then_shut_down())
    assert [line["request_id"] for line in lines_of(chunks)] == ["req_0", "req_1", "req_2"]
