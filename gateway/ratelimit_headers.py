"""How limit decisions show on the wire: the rate-limit headers and the 429 refusal."""

from __future__ import annotations

import math

from gateway.errors import GatewayError
from gateway.http import Headers
from gateway.limits import Decision, Window, rfc3339
from keys.selectors import KeyPrincipal

# Windows the client cannot sensibly wait for in a retry loop: SDKs must not sleep for hours.
LONG_WINDOWS = frozenset({"5h", "week", "account-5h", "account-week"})
WINDOW_WORDS = {"minute": "per minute", "5h": "per 5 hours", "week": "per week"}


def limit_headers(decision: Decision) -> Headers:
    """Anthropic's request headers and the product's x-ratelimit-* (the minute window), and ours
    for the 5-hour and weekly windows. No token headers: the plans set no token limit.

    Each shows the key's window, or the account's when that has less left."""
    if not decision.windows:
        return []  # the limiter could not be asked (fail open): nothing true to say
    minute, five_hours, week = decision.binding_windows()
    minute_values = _window_values(minute)  # formatted once, sent under two names
    return [
        *_named(MINUTE_NAMES, minute_values),
        *_named(PRODUCT_MINUTE_NAMES, minute_values),
        *_named(FIVE_HOUR_NAMES, _window_values(five_hours)),
        *_named(WEEK_NAMES, _window_values(week)),
    ]


def _header_names(prefix: bytes) -> tuple[bytes, bytes, bytes]:
    return (prefix + b"limit", prefix + b"remaining", prefix + b"reset")


MINUTE_NAMES = _header_names(b"anthropic-ratelimit-requests-")
PRODUCT_MINUTE_NAMES = _header_names(b"x-ratelimit-")
FIVE_HOUR_NAMES = _header_names(b"llmapi-ratelimit-requests-5h-")
WEEK_NAMES = _header_names(b"llmapi-ratelimit-requests-week-")


def _window_values(window: Window) -> tuple[bytes, bytes, bytes]:
    return (str(window.limit).encode(), str(window.remaining).encode(), rfc3339(window.reset_at_ms).encode())


def _named(names: tuple[bytes, bytes, bytes], values: tuple[bytes, bytes, bytes]) -> Headers:
    return list(zip(names, values, strict=True))


def rate_limited(decision: Decision, principal: KeyPrincipal) -> GatewayError:
    window = decision.refusing_window()
    if window is None:  # cannot happen for a refusal; a plain 429 all the same
        return GatewayError(429, "Rate limit reached.")
    wait_seconds = max(1, math.ceil((window.next_admission_ms - decision.now_ms) / 1000))
    headers = [(b"retry-after", str(wait_seconds).encode())]
    if window.name in LONG_WINDOWS:
        headers.append((b"x-should-retry", b"false"))
    when = rfc3339(window.next_admission_ms)
    if window.name == "guard":
        message = (
            f"Too many count_tokens and model requests: at most {window.limit} per minute. "
            f"Try again at {when} (in {wait_seconds} s)."
        )
    elif window.name == "concurrent":
        message = (
            f"Too many concurrent requests: your {principal.plan_name} plan allows {window.limit} requests "
            "in flight at once per key. Retry when one of them has finished."
        )
    elif window.name.startswith("account-"):
        words = WINDOW_WORDS[window.name.removeprefix("account-")]
        message = (
            f"Rate limit reached: your {principal.plan_name} plan allows {window.limit} requests {words} "
            f"for all of an account's keys together, deleted ones included ({principal.max_keys} keys of "
            f"{window.limit // max(principal.max_keys, 1)}). The window resets at {when} (in {wait_seconds} s)."
        )
    else:
        message = (
            f"Rate limit reached: your {principal.plan_name} plan allows {window.limit} requests "
            f"{WINDOW_WORDS[window.name]}. The window resets at {when} (in {wait_seconds} s)."
        )
    return GatewayError(429, message, headers)
