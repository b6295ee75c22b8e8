"""Fixtures of the billing tests: a Stripe stand-in per test, webhooks to the live server, logged-in clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from plans.stripe_standin.server import StripeStandInThread
from tests.dashboard.conftest import alice_client, bob_client, private_cache  # noqa: F401 - fixtures
from tests.plans.billing import stripe_standin_for


@pytest.fixture
def standin(asgi_server, settings, live_server_db) -> Iterator[StripeStandInThread]:
    """The stand-in, delivering its events to the live server's webhook endpoint as Stripe would."""
    with stripe_standin_for(settings, webhook_url=asgi_server.base_url + "/stripe/webhook/") as running:
        yield running


@pytest.fixture
def quiet_standin(asgi_server, settings, live_server_db) -> Iterator[StripeStandInThread]:
    """The stand-in sending no webhooks: the test delivers its events itself, in the order it likes."""
    with stripe_standin_for(settings, webhook_url="") as running:
        yield running
