"""Stripe's webhook endpoint on the live server: signatures, bad input, idempotency, order and concurrency.

The stand-in here sends nothing by itself (`quiet_standin`): each test delivers the stand-in's real,
signed events in the order it chooses, as Stripe may.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.urls import reverse

from plans.models import Plan, StripeEvent
from plans.selectors import plan_for_user
from plans.stripe_standin.server import signature_header
from tests.dashboard.conftest import post_form
from tests.plans.billing import billing_row, pay, post_event


def payload_of(event: dict) -> bytes:
    return json.dumps(event).encode()


def deliver(server, standin, event: dict):
    return post_event(server.base_url, payload_of(event), standin.webhook_secret)


def buy(client, slug: str) -> None:
    response = post_form(client, reverse("plans:checkout", args=[slug]))
    assert pay(response["Location"]).status_code == 303


@pytest.fixture
def alice_with_history(alice, alice_client, quiet_standin):
    """Alice bought Pro, upgraded to Max 5x, then cancelled at period end; no event delivered yet."""
    buy(alice_client, "pro")
    (subscription,) = quiet_standin.world.table("subscription").values()
    max_5x = Plan.objects.get(slug="max-5x")
    quiet_standin.world.subscription_update(
        subscription["id"],
        {"items": [{"price": max_5x.stripe_price_id}], "proration_behavior": "always_invoice"},
    )
    quiet_standin.world.subscription_update(subscription["id"], {"cancel_at_period_end": "true"})
    return alice


def assert_final_state(alice) -> None:
    row = billing_row(alice)
    assert row.status == "active"
    assert row.plan.slug == "max-5x"
    assert row.cancel_at_period_end
    assert plan_for_user(user=alice).slug == "max-5x"


def test_events_in_reverse_order_end_in_stripes_current_state(alice_with_history, asgi_server, quiet_standin):
    for event in reversed(quiet_standin.world.outbox):
        assert deliver(asgi_server, quiet_standin, event).status_code == 200
    assert_final_state(alice_with_history)


def test_a_replayed_event_is_acknowledged_and_changes_nothing(alice_with_history, asgi_server, quiet_standin):
    for event in quiet_standin.world.outbox:
        deliver(asgi_server, quiet_standin, event)
    assert_final_state(alice_with_history)
    handled = StripeEvent.objects.count()
    first_subscription_event = next(
        event for event in quiet_standin.world.outbox if event["type"] == "customer.subscription.created"
    )
    replay = deliver(asgi_server, quiet_standin, first_subscription_event)
    assert replay.status_code == 200
    assert replay.text == "duplicate."
    assert StripeEvent.objects.count() == handled
    assert_final_state(alice_with_history)


def test_concurrent_duplicates_in_any_order_end_in_one_consistent_state(alice_with_history, asgi_server, quiet_standin):
    events = quiet_standin.world.outbox
    # Every event three times, newest first, from six threads at once against PostgreSQL.
    deliveries = [event for _ in range(3) for event in reversed(events)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda event: deliver(asgi_server, quiet_standin, event).text, deliveries))
    assert set(answers) <= {"handled.", "duplicate.", "ignored."}
    assert answers.count("duplicate.") == 2 * len(events)
    assert StripeEvent.objects.count() == len(events)
    assert_final_state(alice_with_history)


def test_a_bad_signature_is_400_and_changes_nothing(alice_with_history, asgi_server, quiet_standin):
    event = quiet_standin.world.outbox[-1]
    payload = payload_of(event)
    for header in (
        "",
        "t=1,v1=deadbeef",
        "garbage",
        signature_header(payload, "whsec_someone_else"),
        signature_header(payload, quiet_standin.webhook_secret, timestamp=int(time.time()) - 3600),  # too old
    ):
        response = post_event(asgi_server.base_url, payload, quiet_standin.webhook_secret, signature=header)
        assert response.status_code == 400, header
        assert response.text == "Bad signature."
    tampered = payload.replace(b'"active"', b'"canceled"')
    signed_original = signature_header(payload, quiet_standin.webhook_secret)
    assert post_event(asgi_server.base_url, tampered, "", signature=signed_original).status_code == 400
    assert StripeEvent.objects.count() == 0
    assert billing_row(alice_with_history).status == ""


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe not utf-8",
        b"[1, 2, 3]",
        b'{"id": "evt_1", "type": "customer.subscription.updated", "data": {}}',
        b'{"id": 5, "type": "customer.subscription.updated", "data": {"object": {"id": "sub_1"}}}',
        b'{"type": "invoice.paid", "data": {"object": {}}}',
    ],
)
def test_a_signed_body_that_is_not_an_event_is_400(body, asgi_server, quiet_standin):
    response = post_event(asgi_server.base_url, body, quiet_standin.webhook_secret)
    assert response.status_code == 400
    assert response.text == "Not a Stripe event."
    assert StripeEvent.objects.count() == 0


def test_an_unknown_event_type_is_acknowledged_and_ignored(asgi_server, quiet_standin):
    event = {"id": "evt_unknown_type", "object": "event", "type": "radar.early_fraud_warning.created", "data": {}}
    response = deliver(asgi_server, quiet_standin, event)
    assert response.status_code == 200
    assert response.text == "ignored."
    assert StripeEvent.objects.filter(pk="evt_unknown_type").exists()


def test_an_unknown_customer_is_logged_and_acknowledged(asgi_server, quiet_standin, caplog):
    event = {
        "id": "evt_stranger",
        "object": "event",
        "type": "customer.subscription.updated",
        "data": {"object": {"id": "sub_stranger", "object": "subscription", "customer": "cus_stranger"}},
    }
    with caplog.at_level(logging.WARNING, logger="plans.webhooks"):
        response = deliver(asgi_server, quiet_standin, event)
    assert response.status_code == 200
    assert response.text == "unknown customer."
    assert "cus_stranger" in caplog.text


def test_stripe_unreachable_is_503_and_the_redelivery_is_handled(
    alice, alice_client, asgi_server, quiet_standin, settings
):
    buy(alice_client, "pro")
    created = next(event for event in quiet_standin.world.outbox if event["type"] == "customer.subscription.created")
    reachable = settings.STRIPE_API_BASE
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # discard port: nothing listens
    refused = deliver(asgi_server, quiet_standin, created)
    assert refused.status_code == 503
    assert not StripeEvent.objects.filter(pk=created["id"]).exists()
    settings.STRIPE_API_BASE = reachable
    assert deliver(asgi_server, quiet_standin, created).text == "handled."
    assert billing_row(alice).status == "active"


def test_without_billing_the_endpoint_is_not_there(asgi_server, quiet_standin, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    response = post_event(asgi_server.base_url, b"{}", "whsec_x")
    assert response.status_code == 404
