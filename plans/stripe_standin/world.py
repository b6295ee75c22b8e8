"""The stand-in's state: Stripe objects, a clock that can be advanced, and the events they cause.

Objects are plain dicts in Stripe's JSON shapes (API version 2025-03-31 and later: the billing
period on the subscription item, an invoice's subscription under `parent`). Every change that
Stripe would announce appends an event to the outbox, which server.py delivers, signed, to the
webhook endpoint.

Payments: a customer's card is a test card number. 4000 0000 0000 0341 and 4000 0000 0000 0002
are declined (as at Stripe, 0341 can be saved but not charged); any other number pays. A failed
renewal makes the subscription past_due and is retried 3, 5 and 7 days later; when the last retry
fails the subscription becomes unpaid (Stripe's "mark the subscription as unpaid" setting).
"""

from __future__ import annotations

import copy
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

API_VERSION = "2026-10-28.endive"
DECLINED_CARDS = frozenset({"4000000000000341", "4000000000000002"})
GOOD_CARD = "4242424242424242"
RETRY_DAYS = (3, 5, 7)  # after the first failure, the days of each further attempt
DAY = 24 * 3600
MONTH = 30 * DAY  # every subscription here is monthly; 30 days keep the arithmetic plain
PROMOTION_CODES = {"LAUNCH20": 20}  # code -> percent off the first invoice

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(24))


class StripeApiError(Exception):
    """Answered as Stripe answers errors: {"error": {...}} with an HTTP status."""

    def __init__(self, status: int, message: str, *, code: str = "", param: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = {
            "error": {
                "type": "invalid_request_error",
                "message": message,
                **({"code": code} if code else {}),
                **({"param": param} if param else {}),
            }
        }


def missing(kind: str, object_id: str) -> StripeApiError:
    return StripeApiError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param="id")


@dataclass
class World:
    """Everything the stand-in knows. One lock: the server's loop and the tests' threads share it."""

    base_url: str = "http://127.0.0.1:8200"
    offset_seconds: int = 0
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    cards: dict[str, str] = field(default_factory=dict)  # customer id -> card number
    outbox: list[dict[str, Any]] = field(default_factory=list)
    on_event: Callable[[dict[str, Any]], None] | None = None
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    invoice_count: int = 0

    # ------------------------------------------------------------------ basics

    def now(self) -> int:
        return int(time.time()) + self.offset_seconds

    def table(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.objects.setdefault(kind, {})

    def get(self, kind: str, object_id: str) -> dict[str, Any]:
        found = self.table(kind).get(object_id)
        if found is None:
            raise missing(kind.replace("_", " "), object_id)
        return found

    def store(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.table(kind)[obj["id"]] = obj
        return obj

    def emit(self, event_type: str, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> None:
        event = {
            "id": new_id("evt_"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "type": event_type,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": copy.deepcopy(obj), **({"previous_attributes": previous} if previous else {})},
        }
        self.outbox.append(event)
        if self.on_event is not None:
            self.on_event(event)

    # ------------------------------------------------------------------ catalogue and customers

    def customer_create(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = self.store(
            "customer",
            {
                "id": new_id("cus_"),
                "object": "customer",
                "email": params.get("email"),
                "name": params.get("name"),
                "metadata": params.get("metadata") or {},
                "created": self.now(),
                "livemode": False,
                "invoice_settings": {"default_payment_method": None},
            },
        )
        self.emit("customer.created", customer)
        return customer

    def product_create(self, params: dict[str, Any]) -> dict[str, Any]:
        product_id = params.get("id") or new_id("prod_")
        if product_id in self.table("product"):
            raise StripeApiError(400, f"Product already exists: {product_id}", code="resource_already_exists")
        return self.store(
            "product",
            {
                "id": product_id,
                "object": "product",
                "name": _required(params, "name"),
                "description": params.get("description"),
                "active": True,
                "metadata": params.get("metadata") or {},
                "created": self.now(),
                "livemode": False,
            },
        )

    def price_create(self, params: dict[str, Any]) -> dict[str, Any]:
        product_id = _required(params, "product")
        self.get("product", product_id)
        lookup_key = params.get("lookup_key")
        if lookup_key:
            for other in self.table("price").values():
                if other["lookup_key"] == lookup_key:
                    if params.get("transfer_lookup_key") != "true":
                        raise StripeApiError(400, f"A price with lookup key {lookup_key} exists", param="lookup_key")
                    other["lookup_key"] = None
        recurring = params.get("recurring") or {}
        return self.store(
            "price",
            {
                "id": new_id("price_"),
                "object": "price",
                "product": product_id,
                "active": True,
                "currency": _required(params, "currency"),
                "unit_amount": int(_required(params, "unit_amount")),
                "type": "recurring" if recurring else "one_time",
                "recurring": {"interval": recurring.get("interval", "month"), "interval_count": 1}
                if recurring
                else None,
                "lookup_key": lookup_key or None,
                "metadata": params.get("metadata") or {},
                "created": self.now(),
                "livemode": False,
            },
        )

    def price_list(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        prices = list(self.table("price").values())
        if "lookup_keys" in params:
            prices = [price for price in prices if price["lookup_key"] in params["lookup_keys"]]
        if "active" in params:
            prices = [price for price in prices if price["active"] == (params["active"] == "true")]
        return prices

    # ------------------------------------------------------------------ checkout

    def checkout_session_create(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("mode") != "subscription":
            raise StripeApiError(400, "The stand-in serves subscription mode only", param="mode")
        customer_id = _required(params, "customer")
        self.get("customer", customer_id)
        line_items = _required(params, "line_items")
        if len(line_items) != 1:
            raise StripeApiError(400, "One line item, please", param="line_items")
        self.get("price", line_items[0]["price"])
        session_id = new_id("cs_test_")
        return self.store(
            "checkout_session",
            {
                "id": session_id,
                "object": "checkout.session",
                "mode": "subscription",
                "status": "open",
                "payment_status": "unpaid",
                "customer": customer_id,
                "client_reference_id": params.get("client_reference_id"),
                "allow_promotion_codes": params.get("allow_promotion_codes") == "true",
                "success_url": _required(params, "success_url"),
                "cancel_url": params.get("cancel_url"),
                "url": f"{self.base_url}/c/pay/{session_id}",
                "subscription": None,
                "metadata": params.get("metadata") or {},
                "created": self.now(),
                "expires_at": self.now() + DAY,
                "livemode": False,
                # Not part of Stripe's object; kept to create the subscription when paid.
                "_price": line_items[0]["price"],
                "_subscription_metadata": (params.get("subscription_data") or {}).get("metadata") or {},
            },
        )

    def checkout_pay(self, session_id: str, *, card: str, promotion_code: str = "") -> str:
        """The Pay button. Returns where the browser goes next; raises StripeApiError(402) when declined."""
        session = self.get("checkout_session", session_id)
        if session["status"] != "open":
            raise StripeApiError(400, "This Checkout Session is no longer open.")
        percent_off = 0
        if promotion_code:
            if not session["allow_promotion_codes"] or promotion_code.upper() not in PROMOTION_CODES:
                raise StripeApiError(400, "This promotion code is invalid.")
            percent_off = PROMOTION_CODES[promotion_code.upper()]
        card = _digits(card)
        if card in DECLINED_CARDS:
            raise StripeApiError(402, "Your card was declined.", code="card_declined")
        customer_id = session["customer"]
        self.cards[customer_id] = card
        subscription = self._subscription_start(
            customer_id=customer_id, price_id=session["_price"], metadata=session["_subscription_metadata"]
        )
        self._invoice(subscription, reason="subscription_create", percent_off=percent_off)
        session.update(status="complete", payment_status="paid", subscription=subscription["id"])
        self.emit("checkout.session.completed", _public(session))
        return session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)

    def _subscription_start(self, *, customer_id: str, price_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
        now = self.now()
        subscription_id = new_id("sub_")
        price = self.get("price", price_id)
        subscription = self.store(
            "subscription",
            {
                "id": subscription_id,
                "object": "subscription",
                "customer": customer_id,
                "status": "active",
                "currency": price["currency"],
                "created": now,
                "start_date": now,
                "billing_cycle_anchor": now,
                "cancel_at_period_end": False,
                "cancel_at": None,
                "canceled_at": None,
                "ended_at": None,
                "latest_invoice": None,
                "schedule": None,
                "metadata": metadata,
                "livemode": False,
                "items": {
                    "object": "list",
                    "has_more": False,
                    "url": f"/v1/subscription_items?subscription={subscription_id}",
                    "data": [
                        {
                            "id": new_id("si_"),
                            "object": "subscription_item",
                            "subscription": subscription_id,
                            "price": copy.deepcopy(price),
                            "quantity": 1,
                            "current_period_start": now,
                            "current_period_end": now + MONTH,
                            "created": now,
                        }
                    ],
                },
            },
        )
        self.emit("customer.subscription.created", subscription)
        return subscription

    # ------------------------------------------------------------------ invoices and payments

    def _invoice(self, subscription: dict[str, Any], *, reason: str, amount: int | None = None, percent_off: int = 0):
        item = subscription["items"]["data"][0]
        if amount is None:
            amount = item["price"]["unit_amount"]
        amount = amount * (100 - percent_off) // 100
        self.invoice_count += 1
        invoice_id = new_id("in_")
        invoice = self.store(
            "invoice",
            {
                "id": invoice_id,
                "object": "invoice",
                "customer": subscription["customer"],
                "number": f"STANDIN-{self.invoice_count:04d}",
                "status": "open",
                "billing_reason": reason,
                "currency": subscription["currency"],
                "amount_due": amount,
                "amount_paid": 0,
                "amount_remaining": amount,
                "attempt_count": 0,
                "attempted": False,
                "next_payment_attempt": None,
                "created": self.now(),
                "period_start": item["current_period_start"],
                "period_end": item["current_period_end"],
                "hosted_invoice_url": f"{self.base_url}/i/{invoice_id}",
                "parent": {
                    "type": "subscription_details",
                    "quote_details": None,
                    "subscription_details": {"subscription": subscription["id"], "metadata": subscription["metadata"]},
                },
                "livemode": False,
                "_first_failure": None,
            },
        )
        subscription["latest_invoice"] = invoice_id
        self.emit("invoice.created", _public(invoice))
        self.emit("invoice.finalized", _public(invoice))
        self._attempt(invoice)
        return invoice

    def _attempt(self, invoice: dict[str, Any]) -> None:
        """Charge the customer's card for an open invoice, and move the subscription accordingly."""
        subscription = self.get("subscription", invoice["parent"]["subscription_details"]["subscription"])
        invoice["attempt_count"] += 1
        invoice["attempted"] = True
        if invoice["amount_due"] == 0 or self.cards.get(invoice["customer"], GOOD_CARD) not in DECLINED_CARDS:
            invoice.update(
                status="paid", amount_paid=invoice["amount_due"], amount_remaining=0, next_payment_attempt=None
            )
            self.emit("invoice.paid", _public(invoice))
            self.emit("invoice.payment_succeeded", _public(invoice))
            if subscription["status"] in {"past_due", "unpaid"}:
                self._set_status(subscription, "active")
            return
        first_failure = invoice["_first_failure"] or self.now()
        invoice["_first_failure"] = first_failure
        retries_done = invoice["attempt_count"] - 1
        next_attempt = first_failure + RETRY_DAYS[retries_done] * DAY if retries_done < len(RETRY_DAYS) else None
        invoice["next_payment_attempt"] = next_attempt
        self.emit("invoice.payment_failed", _public(invoice))
        if next_attempt is None:
            self._set_status(subscription, "unpaid")
        elif subscription["status"] == "active":
            self._set_status(subscription, "past_due")

    def _set_status(self, subscription: dict[str, Any], status: str) -> None:
        previous = {"status": subscription["status"]}
        subscription["status"] = status
        self.emit("customer.subscription.updated", subscription, previous)

    def card_set(self, customer_id: str, card: str) -> None:
        """A new card (the portal's form): open invoices are tried again with it at once."""
        self.get("customer", customer_id)
        self.cards[customer_id] = _digits(card)
        for invoice in list(self.table("invoice").values()):
            if invoice["customer"] == customer_id and invoice["status"] == "open":
                self._attempt(invoice)

    def invoice_list(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        invoices = [
            _public(invoice)
            for invoice in self.table("invoice").values()
            if "customer" not in params or invoice["customer"] == params["customer"]
        ]
        return sorted(invoices, key=lambda invoice: invoice["created"], reverse=True)

    # ------------------------------------------------------------------ subscriptions

    def subscription_update(self, subscription_id: str, params: dict[str, Any]) -> dict[str, Any]:
        subscription = self.get("subscription", subscription_id)
        if subscription["status"] in {"canceled", "incomplete_expired"}:
            raise StripeApiError(400, "A canceled subscription can only update its cancellation_details and metadata.")
        previous: dict[str, Any] = {}
        if "cancel_at_period_end" in params:
            if subscription["schedule"]:
                raise StripeApiError(
                    400,
                    f"The subscription is managed by the subscription schedule `{subscription['schedule']}`, and "
                    "updating any cancelation behavior directly is not allowed. Please update the schedule instead.",
                )
            cancel = params["cancel_at_period_end"] == "true"
            if cancel != subscription["cancel_at_period_end"]:
                previous["cancel_at_period_end"] = subscription["cancel_at_period_end"]
                item = subscription["items"]["data"][0]
                subscription.update(
                    cancel_at_period_end=cancel,
                    cancel_at=item["current_period_end"] if cancel else None,
                    canceled_at=self.now() if cancel else None,
                )
        if "metadata" in params:
            subscription["metadata"].update(params["metadata"])
        if "items" in params:
            self._change_price(subscription, params, previous)
        if previous:
            self.emit("customer.subscription.updated", subscription, previous)
        return subscription

    def _change_price(self, subscription: dict[str, Any], params: dict[str, Any], previous: dict[str, Any]) -> None:
        (change,) = params["items"]
        item = subscription["items"]["data"][0]
        if change.get("id") not in {None, item["id"]}:
            raise StripeApiError(400, f"Invalid subscription item: {change.get('id')}", param="items")
        if subscription["schedule"]:
            raise StripeApiError(400, "The subscription is managed by a schedule; release it first.")
        new_price = self.get("price", change["price"])
        old_amount = item["price"]["unit_amount"]
        previous["items"] = copy.deepcopy(subscription["items"])
        item["price"] = copy.deepcopy(new_price)
        behavior = params.get("proration_behavior", "create_prorations")
        if behavior == "always_invoice":
            remaining = max(item["current_period_end"] - self.now(), 0)
            length = item["current_period_end"] - item["current_period_start"] or 1
            difference = (new_price["unit_amount"] - old_amount) * remaining // length
            if difference > 0:
                self._invoice(subscription, reason="subscription_update", amount=difference)

    def subscription_cancel(self, subscription_id: str) -> dict[str, Any]:
        subscription = self.get("subscription", subscription_id)
        if subscription["status"] == "canceled":
            raise StripeApiError(400, f"No such subscription: '{subscription_id}'; it is canceled already.")
        self._end(subscription)
        return subscription

    def _end(self, subscription: dict[str, Any]) -> None:
        now = self.now()
        subscription.update(status="canceled", ended_at=now, canceled_at=subscription["canceled_at"] or now)
        if subscription["schedule"]:
            self.get("subscription_schedule", subscription["schedule"])["status"] = "canceled"
        self.emit("customer.subscription.deleted", subscription)

    # ------------------------------------------------------------------ schedules (changes at period end)

    def schedule_create(self, params: dict[str, Any]) -> dict[str, Any]:
        subscription = self.get("subscription", _required(params, "from_subscription"))
        if subscription["schedule"]:
            raise StripeApiError(400, "The subscription is already attached to a schedule.")
        item = subscription["items"]["data"][0]
        schedule = self.store(
            "subscription_schedule",
            {
                "id": new_id("sub_sched_"),
                "object": "subscription_schedule",
                "customer": subscription["customer"],
                "subscription": subscription["id"],
                "status": "active",
                "end_behavior": "release",
                "released_subscription": None,
                "created": self.now(),
                "current_phase": {"start_date": item["current_period_start"], "end_date": item["current_period_end"]},
                "phases": [
                    {
                        "start_date": item["current_period_start"],
                        "end_date": item["current_period_end"],
                        "items": [{"price": item["price"]["id"], "quantity": 1}],
                    }
                ],
                "livemode": False,
            },
        )
        subscription["schedule"] = schedule["id"]
        self.emit("subscription_schedule.created", schedule)
        return schedule

    def schedule_update(self, schedule_id: str, params: dict[str, Any]) -> dict[str, Any]:
        schedule = self.get("subscription_schedule", schedule_id)
        if schedule["status"] not in {"active", "not_started"}:
            raise StripeApiError(400, f"You cannot update a schedule that is {schedule['status']}.")
        if "phases" in params:
            phases = []
            for phase in params["phases"]:
                start = int(phase.get("start_date") or schedule["current_phase"]["start_date"])
                end = int(phase["end_date"]) if phase.get("end_date") else start + MONTH
                for entry in phase["items"]:
                    self.get("price", entry["price"])
                items = [
                    {"price": entry["price"], "quantity": int(entry.get("quantity", 1))} for entry in phase["items"]
                ]
                phases.append({"start_date": start, "end_date": end, "items": items})
            schedule["phases"] = phases
        schedule["end_behavior"] = params.get("end_behavior", schedule["end_behavior"])
        self.emit("subscription_schedule.updated", schedule)
        subscription = self.get("subscription", schedule["subscription"])
        self.emit("customer.subscription.updated", subscription, {"schedule": schedule["id"]})
        return schedule

    def schedule_release(self, schedule_id: str) -> dict[str, Any]:
        schedule = self.get("subscription_schedule", schedule_id)
        if schedule["status"] not in {"active", "not_started"}:
            raise StripeApiError(400, f"You cannot release a schedule that is {schedule['status']}.")
        subscription = self.get("subscription", schedule["subscription"])
        schedule.update(status="released", released_subscription=subscription["id"], subscription=None)
        subscription["schedule"] = None
        self.emit("subscription_schedule.released", schedule)
        self.emit("customer.subscription.updated", subscription, {"schedule": schedule["id"]})
        return schedule

    # ------------------------------------------------------------------ portal

    def portal_session_create(self, params: dict[str, Any]) -> dict[str, Any]:
        customer_id = _required(params, "customer")
        self.get("customer", customer_id)
        session_id = new_id("bps_")
        return self.store(
            "portal_session",
            {
                "id": session_id,
                "object": "billing_portal.session",
                "customer": customer_id,
                "return_url": params.get("return_url"),
                "url": f"{self.base_url}/p/session/{session_id}",
                "created": self.now(),
                "livemode": False,
            },
        )

    def customer_subscriptions(self, customer_id: str) -> list[dict[str, Any]]:
        return [sub for sub in self.table("subscription").values() if sub["customer"] == customer_id]

    # ------------------------------------------------------------------ the clock

    def advance(self, seconds: int) -> int:
        """Move the clock on, and do what Stripe does meanwhile: retries, renewals, period ends."""
        target = self.now() + seconds
        while True:
            due = self._next_due(before=target)
            if due is None:
                break
            when, action = due
            self.offset_seconds = max(self.offset_seconds, when - int(time.time()))
            action()
        self.offset_seconds = target - int(time.time())
        return self.now()

    def _next_due(self, *, before: int) -> tuple[int, Callable[[], None]] | None:
        candidates: list[tuple[int, Callable[[], None]]] = []
        for invoice in self.table("invoice").values():
            attempt = invoice["next_payment_attempt"]
            if invoice["status"] == "open" and attempt is not None and attempt <= before:
                candidates.append((attempt, lambda invoice=invoice: self._attempt(invoice)))
        for subscription in self.table("subscription").values():
            end = subscription["items"]["data"][0]["current_period_end"]
            if subscription["status"] in {"active", "past_due", "trialing"} and end <= before:
                candidates.append((end, lambda subscription=subscription: self._period_end(subscription)))
        return min(candidates, key=lambda candidate: candidate[0]) if candidates else None

    def _period_end(self, subscription: dict[str, Any]) -> None:
        item = subscription["items"]["data"][0]
        if subscription["cancel_at_period_end"]:
            self._end(subscription)
            return
        previous = {"items": copy.deepcopy(subscription["items"])}
        start = item["current_period_end"]
        if subscription["schedule"]:
            self._enter_next_phase(subscription, start)
        item.update(current_period_start=start, current_period_end=start + MONTH)
        self.emit("customer.subscription.updated", subscription, previous)
        self._invoice(subscription, reason="subscription_cycle")

    def _enter_next_phase(self, subscription: dict[str, Any], start: int) -> None:
        schedule = self.get("subscription_schedule", subscription["schedule"])
        upcoming = [phase for phase in schedule["phases"] if phase["start_date"] >= start]
        if upcoming:
            phase = min(upcoming, key=lambda phase: phase["start_date"])
            subscription["items"]["data"][0]["price"] = copy.deepcopy(self.get("price", phase["items"][0]["price"]))
            schedule["current_phase"] = {"start_date": phase["start_date"], "end_date": phase["end_date"]}
        if (
            not [phase for phase in schedule["phases"] if phase["start_date"] > start]
            and schedule["end_behavior"] == "release"
        ):
            schedule.update(status="released", released_subscription=subscription["id"], subscription=None)
            subscription["schedule"] = None
            self.emit("subscription_schedule.released", schedule)


def _required(params: dict[str, Any], name: str) -> Any:
    if name not in params or params[name] in ("", None):
        raise StripeApiError(400, f"Missing required param: {name}.", code="parameter_missing", param=name)
    return params[name]


def _digits(card: str) -> str:
    return "".join(character for character in card if character.isdigit())


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the API shows it: without the stand-in's own bookkeeping (keys starting with _)."""
    return {key: value for key, value in obj.items() if not key.startswith("_")}
