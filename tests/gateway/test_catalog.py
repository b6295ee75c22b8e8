"""count_tokens and the model list, through the live gateway with the SDK."""

from __future__ import annotations

import httpx
import pytest

from gateway.models import RouteTarget
from gateway.services import upstream_add
from tests.helpers import free_port


def test_count_tokens_is_forwarded_with_its_query_string(gateway):
    client = gateway.client()
    counted = client.messages.count_tokens(
        model="claude-sonnet-4-6",
        messages=[{"role": "user", "content": "How many tokens is this sentence?"}],
        extra_query={"beta": "true"},
    )
    assert counted.input_tokens == len("How many tokens is this sentence?") // 4
    upstream_request = gateway.simulator.requests()[-1]
    assert upstream_request["path"] == "/v1/messages/count_tokens"
    assert upstream_request["query_string"] == "beta=true"


def test_count_tokens_falls_back_to_a_local_estimate_when_no_backend_answers(gateway):
    upstream_add(name="dead", base_url=f"http://127.0.0.1:{free_port()}", credentials=["sk-ant-dead"])
    RouteTarget.objects.filter(upstream__name="sim").delete()
    counted = gateway.client().messages.count_tokens(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": "x" * 700}]
    )
    assert counted.input_tokens == 200  # 700 characters at 3.5 per token: never a silent 0


def test_count_tokens_validates_its_body(gateway):
    response = httpx.post(
        gateway.base_url + "/v1/messages/count_tokens",
        json={"model": "claude-sonnet-4-6"},
        headers={"x-api-key": gateway.key},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "messages: Field required"


def test_models_list_pages_through_the_catalogue(gateway):
    client = gateway.client()
    every = [model.id for model in client.models.list(limit=1000)]
    assert {"claude-sonnet-4-6", "claude-opus-4-6", "claude-haiku-4-5"} <= set(every)
    paged = [model.id for model in client.models.list(limit=3)]  # the SDK follows has_more/last_id
    assert paged == every
    first_page = client.models.list(limit=2)
    assert first_page.has_more
    assert [model.id for model in first_page.data] == every[:2]


def test_models_retrieve_listed_and_glob_caught(gateway, anthropic_errors):
    client = gateway.client()
    sonnet = client.models.retrieve("claude-sonnet-4-6")
    assert (sonnet.id, sonnet.display_name, sonnet.type) == (
        "claude-sonnet-4-6",
        "Claude Sonnet 4.6",
        "model",
    )
    assert client.models.retrieve("claude-opus-5-5").id == "claude-opus-5-5"
    with pytest.raises(anthropic_errors.NotFoundError, match="model: gpt-4o"):
        client.models.retrieve("gpt-4o")


def test_models_need_a_key(gateway):
    assert httpx.get(gateway.base_url + "/v1/models").status_code == 401
