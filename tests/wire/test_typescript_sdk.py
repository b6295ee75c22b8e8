"""The official TypeScript SDK (@anthropic-ai/sdk) against the live gateway, through node scripts."""

from __future__ import annotations

from typing import Any

from tests.wire.conftest import NodeRunner


def gateway_env(gateway: Any) -> dict[str, str]:
    return {"ANTHROPIC_BASE_URL": gateway.base_url, "ANTHROPIC_API_KEY": gateway.key}


def test_create(gateway, node: NodeRunner) -> None:
    out = node.run("create.mjs", **gateway_env(gateway))
    print(out)
    print(gateway.simulator.requests())
