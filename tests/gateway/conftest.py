"""Fixtures shared by the gateway's tests: the usage stream, and a plan of a test's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from django.conf import settings

from gateway.redis_keys import usage_stream_key
from plans.models import Plan


@pytest.fixture
def stream_client() -> Iterator[redis.Redis]:
    """A client of the test Redis, with the usage stream empty before and after the test."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(usage_stream_key(0))
    yield client
    client.delete(usage_stream_key(0))
    client.close()


@pytest.fixture
def unlimited(gateway):
    """Alice on a plan no test reaches the limits of."""
    return move_to_new_plan(
        gateway,
        "unlimited",
        requests_per_minute=1_000_000,
        requests_per_5_hours=1_000_000,
        requests_per_week=1_000_000,
        concurrent_requests_per_key=1_000,
    )


def move_to_new_plan(gateway, slug: str, **limits: int):
    """Alice on a plan made for the test (five keys, and `limits`), before any request of hers."""
    plan = Plan.objects.create(slug=slug, name=slug.title(), max_keys=5, **limits)
    gateway.user.plan = plan
    gateway.user.save()
    return gateway
