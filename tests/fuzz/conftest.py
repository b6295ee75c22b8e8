"""The fuzz suite's setup: a bounded, repeatable Hypothesis run against the real server."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from plans.models import Plan


def fuzz_settings(max_examples: int) -> settings:
    """Deterministic (the same examples every run, no example database) and bounded, so `make test` stays quick."""
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,  # the server and its data are shared by a test's examples on purpose
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


@pytest.fixture
def fuzz_gateway(gateway):
    """The live gateway, its key on a plan no fuzz run can use up: a 429 would hide what comes after it."""
    gateway.user.plan = Plan.objects.create(
        slug="fuzz",
        name="Fuzz",
        requests_per_minute=1_000_000,
        requests_per_5_hours=1_000_000,
        requests_per_week=1_000_000,
        max_keys=20,
        is_public=False,
    )
    gateway.user.save(update_fields=["plan"])
    return gateway
