"""The stand-in's HTTP side: Stripe's API for the official library, the pages a person sees, webhooks.

- `/v1/...`: customers, products, prices, checkout sessions, billing portal sessions, subscriptions
  (retrieve, update, cancel), subscription schedules, invoices and events, form-encoded requests
  and JSON answers as Stripe's, errors as `{"error": {...}}`; the API key must match.
- `/c/pay/<session>`: the Checkout page (card number, promotion code, Pay button);
  `/p/session/<session>`: the Customer Portal (card, cancellation, invoices);
  `/i/<invoice>`: a hosted invoice.
- `/_standin/...`: the clock (`POST /_standin/clock/advance` with `days=` or `seconds=`), a
  customer's card (`POST /_standin/customers/<id>/card` with `number=`), the events and their
  deliveries (`GET /_standin/events`, `POST /_standin/events/<id>/resend`). No key needed.

Webhooks go to one endpoint, one at a time in the order they happened, signed as Stripe signs
them (`Stripe-Signature: t=<unix time>,v1=<HMAC-SHA256 of "t.body" with the endpoint secret>`);
a delivery that fails is retried a few times.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import logging
import queue
import re
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
from aiohttp import web

from plans.stripe_standin.world import StripeApiError, World, _public

logger = logging.getLogger(__name__)

DEFAULT_API_KEY = "sk_test_standin"
DEFAULT_WEBHOOK_SECRET = "whsec_standin"  # noqa: S105 - the stand-in's published test secret
DELIVERY_ATTEMPTS = 5
_BRACKETS = re.compile(r"\[([^\]]*)\]")


# --------------------------------------------------------------------------- form decoding


def decode_form(text: str) -> dict[str, Any]:
    """Stripe's form encoding (`items[0][price]=p&metadata[k]=v&expand[0]=x`) as nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        head = key.split("[", 1)[0]
        path = [head, *_BRACKETS.findall(key[len(head) :])]
        node = root
        for part in path[:-1]:
            node = node.setdefault(part or str(len(node)), {})
        node[path[-1] or str(len(node))] = value
    return _lists_from_indexes(root)


def _lists_from_indexes(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _lists_from_indexes(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


# --------------------------------------------------------------------------- webhook delivery


def signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """Stripe's scheme: t=<unix time>,v1=<hex HMAC-SHA256 over "t.payload">."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    return f"t={timestamp},v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


class WebhookSender:
    """Delivers events to the endpoint in a thread of its own, in order, with a few retries."""

    def __init__(self, url: str, secret: str) -> None:
        self.url = url
        self.secret = secret
        self.deliveries: dict[str, list[int | str]] = {}  # event id -> statuses of each attempt
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._pending = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stripe-standin-webhooks", daemon=True)

    def start(self) -> WebhookSender:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop now: events not delivered yet are dropped, retries included (a test's leftovers
        must not reach the next test's endpoint)."""
        self._stopped.set()
        self._queue.put(None)
        self._thread.join(timeout=60)

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def send(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._pending += 1
        self._queue.put(event)

    def _run(self) -> None:
        with httpx.Client(timeout=30.0) as client:
            while (event := self._queue.get()) is not None and not self._stopped.is_set():
                try:
                    self._deliver(client, event)
                finally:
                    with self._lock:
                        self._pending -= 1

    def _deliver(self, client: httpx.Client, event: dict[str, Any]) -> None:
        payload = json.dumps(event, indent=2).encode()
        attempts = self.deliveries.setdefault(event["id"], [])
        for attempt in range(DELIVERY_ATTEMPTS):
            if self._stopped.is_set():
                return
            try:
                response = client.post(
                    self.url,
                    content=payload,
                    headers={
                        "Content-Type": "application/json; charset=utf-8",
                        "Stripe-Signature": signature_header(payload, self.secret),
                        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                    },
                )
                attempts.append(response.status_code)
                answer = f"{response.status_code} {response.text[:80]}"
                logger.info("webhook %s %s: %s", event["id"], event["type"], answer)
                if response.is_success:
                    return
            except httpx.HTTPError as error:
                attempts.append(type(error).__name__)
            if self._stopped.wait(0.2 * 2**attempt):  # Stripe backs off over days; here a few seconds in all
                return
        logger.warning("webhook %s (%s) not delivered after %d attempts", event["id"], event["type"], len(attempts))


# --------------------------------------------------------------------------- the app


class StandIn:
    """The world, its lock, and the webhook sender, as the request handlers use them."""

    def __init__(self, world: World, api_key: str, sender: WebhookSender | None) -> None:
        self.world = world
        self.api_key = api_key
        self.sender = sender
        if sender is not None:
            world.on_event = sender.send

    def run(self, action: Callable[[], Any]) -> Any:
        with self.world.lock:
            return action()


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


def listing(url: str, data: list[dict[str, Any]], limit: int = 10) -> dict[str, Any]:
    return {"object": "list", "url": url, "has_more": len(data) > limit, "data": data[:limit]}


def expanded(world: World, obj: dict[str, Any], expand: list[str]) -> dict[str, Any]:
    shown = _public(obj)
    kinds = {"schedule": "subscription_schedule", "latest_invoice": "invoice", "customer": "customer"}
    for path in expand:
        name = path.removeprefix("data.")
        if name in kinds and isinstance(shown.get(name), str):
            shown[name] = _public(world.get(kinds[name], shown[name]))
    return shown


def build_app(stand_in: StandIn) -> web.Application:
    world = stand_in.world

    @web.middleware
    async def stripe_errors(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        if request.path.startswith("/v1/") and request.headers.get("Authorization") != f"Bearer {stand_in.api_key}":
            return json_response(
                {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided."}}, 401
            )
        try:
            return await handler(request)
        except StripeApiError as error:
            if request.path.startswith("/v1/"):
                return json_response(error.body, error.status)
            return page(error.body["error"]["message"], f"<p>{html.escape(str(error))}</p>", status=error.status)

    async def params_of(request: web.Request) -> dict[str, Any]:
        text = await request.text() if request.method == "POST" else request.query_string
        return decode_form(text)

    def api(action: Callable[[dict[str, Any], web.Request], Any]) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            params = await params_of(request)
            result = stand_in.run(lambda: action(params, request))
            if isinstance(result, dict) and result.get("object") != "list":
                result = stand_in.run(lambda: expanded(world, result, params.get("expand") or []))
            return json_response(result)

        return handler

    def one(kind: str) -> Callable[[dict[str, Any], web.Request], Any]:
        return lambda params, request: world.get(kind, request.match_info["id"])

    def subscription_list(params: dict[str, Any], request: web.Request) -> dict[str, Any]:
        found = [_public(sub) for sub in world.table("subscription").values()]
        if "customer" in params:
            found = [sub for sub in found if sub["customer"] == params["customer"]]
        return listing("/v1/subscriptions", found, int(params.get("limit", 10)))

    app = web.Application(middlewares=[stripe_errors])
    routes = [
        web.post("/v1/customers", api(lambda params, request: world.customer_create(params))),
        web.get("/v1/customers/{id}", api(one("customer"))),
        web.post("/v1/products", api(lambda params, request: world.product_create(params))),
        web.get("/v1/products/{id}", api(one("product"))),
        web.post("/v1/prices", api(lambda params, request: world.price_create(params))),
        web.get(
            "/v1/prices",
            api(lambda params, request: listing("/v1/prices", world.price_list(params), int(params.get("limit", 10)))),
        ),
        web.get("/v1/prices/{id}", api(one("price"))),
        web.post("/v1/checkout/sessions", api(lambda params, request: world.checkout_session_create(params))),
        web.get("/v1/checkout/sessions/{id}", api(one("checkout_session"))),
        web.post("/v1/billing_portal/sessions", api(lambda params, request: world.portal_session_create(params))),
        web.get("/v1/subscriptions", api(subscription_list)),
        web.get("/v1/subscriptions/{id}", api(one("subscription"))),
        web.post(
            "/v1/subscriptions/{id}",
            api(lambda params, request: world.subscription_update(request.match_info["id"], params)),
        ),
        web.delete(
            "/v1/subscriptions/{id}", api(lambda params, request: world.subscription_cancel(request.match_info["id"]))
        ),
        web.post("/v1/subscription_schedules", api(lambda params, request: world.schedule_create(params))),
        web.get("/v1/subscription_schedules/{id}", api(one("subscription_schedule"))),
        web.post(
            "/v1/subscription_schedules/{id}",
            api(lambda params, request: world.schedule_update(request.match_info["id"], params)),
        ),
        web.post(
            "/v1/subscription_schedules/{id}/release",
            api(lambda params, request: world.schedule_release(request.match_info["id"])),
        ),
        web.get(
            "/v1/invoices",
            api(lambda params, request: listing("/v1/invoices", world.invoice_list(params), _limit(params))),
        ),
        web.get("/v1/invoices/{id}", api(one("invoice"))),
        web.get(
            "/v1/events",
            api(lambda params, request: listing("/v1/events", world.outbox[::-1], int(params.get("limit", 10)))),
        ),
        web.get("/v1/events/{id}", api(lambda params, request: _event(world, request.match_info["id"]))),
    ]
    app.add_routes(routes)
    app.add_routes(pages(stand_in))
    app.add_routes(controls(stand_in))
    return app


def _limit(params: dict[str, Any]) -> int:
    return int(params.get("limit", 10))


def _event(world: World, event_id: str) -> dict[str, Any]:
    for event in world.outbox:
        if event["id"] == event_id:
            return event
    raise StripeApiError(404, f"No such event: '{event_id}'", code="resource_missing", param="id")


# --------------------------------------------------------------------------- pages a person sees


def page(title: str, body: str, status: int = 200) -> web.Response:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} · Stripe stand-in</title></head>"
        f"<body><header><p>Stripe stand-in (test mode)</p></header><main><h1>{html.escape(title)}</h1>"
        f"{body}</main></body></html>"
    )
    return web.Response(text=document, status=status, content_type="text/html")


def money(cents: int, currency: str) -> str:
    return f"{cents / 100:,.2f} {currency.upper()}"


def day(timestamp: int | None) -> str:
    return "-" if timestamp is None else datetime.fromtimestamp(timestamp, tz=UTC).strftime("%B %-d, %Y")


def pages(stand_in: StandIn) -> list[web.RouteDef]:
    world = stand_in.world

    def checkout_page(session: dict[str, Any], error: str = "") -> web.Response:
        price = world.get("price", session["_price"])
        product = world.get("product", price["product"])
        customer = world.get("customer", session["customer"])
        if session["status"] != "open":
            return page("This checkout is over", "<p>The payment for this session is complete or expired.</p>")
        promotion = (
            '<p><label for="promotion_code">Promotion code</label> '
            '<input id="promotion_code" name="promotion_code" autocomplete="off"></p>'
            if session["allow_promotion_codes"]
            else ""
        )
        cancel = f'<p><a href="{html.escape(session["cancel_url"])}">Back</a></p>' if session["cancel_url"] else ""
        alert = f'<p role="alert">{html.escape(error)}</p>' if error else ""
        return page(
            f"Subscribe to {product['name']}",
            f"<p>{html.escape(money(price['unit_amount'], price['currency']))} per month</p>"
            f"<p>Email: {html.escape(customer['email'] or '')}</p>{alert}"
            f'<form method="post"><p><label for="card">Card number</label> '
            f'<input id="card" name="card" value="4242 4242 4242 4242" autocomplete="off"></p>'
            f'{promotion}<p><button type="submit">Pay</button></p></form>{cancel}',
            status=402 if error else 200,
        )

    async def checkout_get(request: web.Request) -> web.Response:
        return stand_in.run(lambda: checkout_page(world.get("checkout_session", request.match_info["id"])))

    async def checkout_post(request: web.Request) -> web.Response:
        form = await request.post()
        session_id = request.match_info["id"]

        def pay() -> web.Response:
            session = world.get("checkout_session", session_id)
            try:
                target = world.checkout_pay(
                    session_id, card=str(form.get("card", "")), promotion_code=str(form.get("promotion_code", ""))
                )
            except StripeApiError as error:
                return checkout_page(session, error=str(error))
            raise web.HTTPSeeOther(target)

        return stand_in.run(pay)

    def portal_page(session: dict[str, Any]) -> web.Response:
        customer = world.get("customer", session["customer"])
        parts = [f"<p>{html.escape(customer['email'] or customer['id'])}</p>"]
        for subscription in world.customer_subscriptions(customer["id"]):
            if subscription["status"] in {"canceled", "incomplete_expired"}:
                continue
            parts.append(portal_subscription(session, subscription))
        card = world.cards.get(customer["id"], "")
        parts.append(
            f"<h2>Payment method</h2><p>Card ending in {html.escape(card[-4:] or '-')}</p>"
            f'<form method="post" action="/p/session/{session["id"]}/card">'
            '<p><label for="card">New card number</label> <input id="card" name="card" autocomplete="off"></p>'
            '<p><button type="submit">Update card</button></p></form>'
        )
        rows = "".join(
            f'<li><a href="{html.escape(invoice["hosted_invoice_url"])}">{html.escape(invoice["number"])}</a> '
            f"{html.escape(money(invoice['amount_due'], invoice['currency']))} {html.escape(invoice['status'])}</li>"
            for invoice in world.invoice_list({"customer": customer["id"]})
        )
        parts.append(f"<h2>Invoices</h2><ul>{rows}</ul>")
        if session["return_url"]:
            parts.append(f'<p><a href="{html.escape(session["return_url"])}">Return to the site</a></p>')
        return page("Billing", "".join(parts))

    def portal_subscription(session: dict[str, Any], subscription: dict[str, Any]) -> str:
        item = subscription["items"]["data"][0]
        product = world.get("product", item["price"]["product"])
        period_end = day(item["current_period_end"])
        if subscription["cancel_at_period_end"]:
            state = f"<p>Cancels on {period_end}.</p>"
            action = ("renew", "Renew subscription")
        else:
            state = f"<p>Status: {html.escape(subscription['status'])}. Renews on {period_end}.</p>"
            action = ("cancel", "Cancel subscription")
        return (
            f"<h2>{html.escape(product['name'])}</h2>{state}"
            f'<form method="post" action="/p/session/{session["id"]}/{action[0]}/{subscription["id"]}">'
            f'<button type="submit">{action[1]}</button></form>'
        )

    async def portal_get(request: web.Request) -> web.Response:
        return stand_in.run(lambda: portal_page(world.get("portal_session", request.match_info["id"])))

    async def portal_card(request: web.Request) -> web.Response:
        form = await request.post()
        session_id = request.match_info["id"]

        def update() -> web.Response:
            session = world.get("portal_session", session_id)
            world.card_set(session["customer"], str(form.get("card", "")))
            raise web.HTTPSeeOther(f"/p/session/{session_id}")

        return stand_in.run(update)

    def portal_cancel_action(cancel: bool) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            session_id = request.match_info["id"]

            def act() -> web.Response:
                session = world.get("portal_session", session_id)
                subscription = world.get("subscription", request.match_info["subscription"])
                if subscription["customer"] != session["customer"]:
                    raise StripeApiError(404, "No such subscription for this customer.")
                if subscription["schedule"]:
                    world.schedule_release(subscription["schedule"])
                world.subscription_update(subscription["id"], {"cancel_at_period_end": "true" if cancel else "false"})
                raise web.HTTPSeeOther(f"/p/session/{session_id}")

            return stand_in.run(act)

        return handler

    async def invoice_get(request: web.Request) -> web.Response:
        invoice = stand_in.run(lambda: world.get("invoice", request.match_info["id"]))
        return page(
            f"Invoice {invoice['number']}",
            f"<p>Amount: {html.escape(money(invoice['amount_due'], invoice['currency']))}</p>"
            f"<p>Status: {html.escape(invoice['status'])}</p><p>Date: {day(invoice['created'])}</p>",
        )

    return [
        web.get("/c/pay/{id}", checkout_get),
        web.post("/c/pay/{id}", checkout_post),
        web.get("/p/session/{id}", portal_get),
        web.post("/p/session/{id}/card", portal_card),
        web.post("/p/session/{id}/cancel/{subscription}", portal_cancel_action(True)),
        web.post("/p/session/{id}/renew/{subscription}", portal_cancel_action(False)),
        web.get("/i/{id}", invoice_get),
    ]


# --------------------------------------------------------------------------- controls


def controls(stand_in: StandIn) -> list[web.RouteDef]:
    world = stand_in.world

    async def clock(request: web.Request) -> web.Response:
        return json_response({"now": stand_in.run(world.now)})

    async def advance(request: web.Request) -> web.Response:
        params = decode_form(await request.text()) or dict(request.query)
        try:
            seconds = int(float(params.get("days", 0)) * 86400) + int(params.get("seconds", 0))
        except ValueError:
            return json_response({"error": {"message": "days and seconds must be numbers"}}, 400)
        return json_response({"now": stand_in.run(lambda: world.advance(seconds))})

    async def card(request: web.Request) -> web.Response:
        params = decode_form(await request.text())
        stand_in.run(lambda: world.card_set(request.match_info["id"], str(params.get("number", ""))))
        return json_response({"customer": request.match_info["id"], "card": params.get("number", "")})

    async def events(request: web.Request) -> web.Response:
        deliveries = stand_in.sender.deliveries if stand_in.sender else {}
        rows = stand_in.run(
            lambda: [
                {"id": event["id"], "type": event["type"], "deliveries": deliveries.get(event["id"], [])}
                for event in world.outbox
            ]
        )
        return json_response({"events": rows, "pending": stand_in.sender.pending if stand_in.sender else 0})

    async def resend(request: web.Request) -> web.Response:
        event = stand_in.run(lambda: _event(world, request.match_info["id"]))
        if stand_in.sender is not None:
            stand_in.sender.send(event)
        return json_response({"resent": event["id"]})

    return [
        web.get("/_standin/clock", clock),
        web.post("/_standin/clock/advance", advance),
        web.post("/_standin/customers/{id}/card", card),
        web.get("/_standin/events", events),
        web.post("/_standin/events/{id}/resend", resend),
    ]


# --------------------------------------------------------------------------- running it


def run_standin(
    *,
    host: str,
    port: int,
    api_key: str,
    webhook_url: str,
    webhook_secret: str,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve until interrupted (the `simulate_stripe` command)."""
    base_url = f"http://{host}:{port}"
    sender = WebhookSender(webhook_url, webhook_secret).start() if webhook_url else None
    stand_in = StandIn(World(base_url=base_url), api_key, sender)

    def on_listening(_banner: str) -> None:
        if announce is not None:
            announce(base_url)

    try:
        web.run_app(build_app(stand_in), host=host, port=port, print=on_listening)
    finally:
        if sender is not None:
            sender.stop()


class StripeStandInThread:
    """The stand-in on its own event loop in a daemon thread, for tests; `world` is shared with them."""

    def __init__(self, *, webhook_url: str = "", webhook_secret: str = DEFAULT_WEBHOOK_SECRET) -> None:
        self.api_key = DEFAULT_API_KEY
        self.webhook_secret = webhook_secret
        self.sender = WebhookSender(webhook_url, webhook_secret) if webhook_url else None
        self.world = World()
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.base_url = self.world.base_url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stripe-standin", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def start(self) -> StripeStandInThread:
        if self.sender is not None:
            self.sender.start()
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("the Stripe stand-in did not start")
        return self

    def stop(self) -> None:
        # The sender first: a delivery in flight makes the endpoint call back into the stand-in,
        # which must still be serving then (a connection made while it shuts down is left open).
        if self.sender is not None:
            self.sender.stop()
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=15)
        self._socket.close()

    def advance(self, *, days: float = 0, seconds: int = 0) -> int:
        with self.world.lock:
            return self.world.advance(int(days * 86400) + seconds)

    def _run(self) -> None:
        with asyncio.Runner() as runner:
            runner.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        app = build_app(StandIn(self.world, self.api_key, self.sender))
        runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await runner.setup()
        await web.SockSite(runner, self._socket).start()
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await runner.cleanup()
            # The connections it closed finish closing on the loop's next turn; without one, the
            # loop ends first and their sockets are left to the garbage collector (ResourceWarning).
            await asyncio.sleep(0)
