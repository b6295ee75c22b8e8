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
TOKEN_WORDS = {
    "input-tokens": "input tokens per minute (cache reads are not counted)",
    "output-tokens": "output tokens per minute",
}


def limit_headers(decision: Decision) -> Headers:
    """Anthropic's request headers and the product's x-ratelimit-* (the minute window), ours for
    the 5-hour and weekly windows, Anthropic's token headers for the token windows the plan sets,
    and Anthropic's unified headers for the 5-hour and weekly windows (what Claude Code reads of a
    subscription's windows).

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
        *token_headers(decision.binding_token_windows()),
        *unified_headers(decision, five_hours, week),
    ]


def token_headers(windows: tuple[Window, ...]) -> Headers:
    """anthropic-ratelimit-input-tokens-* and -output-tokens-* for each token window the plan sets,
    and -tokens-* for whichever of them is the more restrictive now (the smaller share left), as
    Anthropic sends them. None without token limits: no number would be true."""
    if not windows:
        return []
    values = [_window_values(window) for window in windows]  # formatted once, the tightest sent twice
    tightest = min(range(len(windows)), key=lambda index: windows[index].remaining / windows[index].limit)
    headers = _named(ALL_TOKEN_NAMES, values[tightest])
    for window, window_values in zip(windows, values, strict=True):
        headers += _named(TOKEN_NAMES[window.name.removeprefix("account-")], window_values)
    return headers


# From this share of a window used, the unified status warns (Claude Code shows how much is left).
UNIFIED_WARNING_UTILIZATION = 0.8
UNIFIED_CLAIMS = (("five_hour", b"5h"), ("seven_day", b"7d"))


def unified_headers(decision: Decision, five_hours: Window, week: Window) -> Headers:
    """anthropic-ratelimit-unified-*: per window its utilization (0 to 1), reset (Unix seconds) and
    status, then the window that binds most (the representative claim) and the overall status:
    rejected when a 5-hour or weekly window refused this request, allowed_warning when one is at
    UNIFIED_WARNING_UTILIZATION or more, else allowed."""
    refused_by = decision.refusing_window()
    headers: Headers = []
    representative = None
    for (claim, short), window in zip(UNIFIED_CLAIMS, (five_hours, week), strict=True):
        used = _utilization(window)
        rejected = refused_by is not None and _same_span(refused_by, window)
        status = _unified_status(used, rejected)
        prefix = b"anthropic-ratelimit-unified-" + short
        headers += [
            (prefix + b"-utilization", f"{used:.2f}".encode()),
            (prefix + b"-reset", str(math.ceil(window.reset_at_ms / 1000)).encode()),
            (prefix + b"-status", status),
        ]
        if representative is None or (rejected, used) > representative[:2]:
            representative = (rejected, used, claim, status, window)
    _, _, claim, status, window = representative
    return [
        (b"anthropic-ratelimit-unified-status", status),
        (b"anthropic-ratelimit-unified-representative-claim", claim.encode()),
        (b"anthropic-ratelimit-unified-reset", str(math.ceil(window.reset_at_ms / 1000)).encode()),
        *headers,
    ]


def _utilization(window: Window) -> float:
    return min(window.used / window.limit, 1.0) if window.limit > 0 else 1.0


def _unified_status(utilization: float, rejected: bool) -> bytes:
    if rejected:
        return b"rejected"
    return b"allowed_warning" if utilization >= UNIFIED_WARNING_UTILIZATION else b"allowed"


def _header_names(prefix: bytes) -> tuple[bytes, bytes, bytes]:
    return (prefix + b"limit", prefix + b"remaining", prefix + b"reset")


MINUTE_NAMES = _header_names(b"anthropic-ratelimit-requests-")
PRODUCT_MINUTE_NAMES = _header_names(b"x-ratelimit-")
FIVE_HOUR_NAMES = _header_names(b"llmapi-ratelimit-requests-5h-")
WEEK_NAMES = _header_names(b"llmapi-ratelimit-requests-week-")
ALL_TOKEN_NAMES = _header_names(b"anthropic-ratelimit-tokens-")
TOKEN_NAMES = {
    "input-tokens": _header_names(b"anthropic-ratelimit-input-tokens-"),
    "output-tokens": _header_names(b"anthropic-ratelimit-output-tokens-"),
}


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
    elif window.name.removeprefix("account-") in TOKEN_WORDS:
        whose = " for all of an account's keys together" if window.name.startswith("account-") else ""
        message = (
            f"Rate limit reached: your {principal.plan_name} plan allows {window.limit:,} "
            f"{TOKEN_WORDS[window.name.removeprefix('account-')]}{whose}. Enough of the window is free "
            f"again at {when} (in {wait_seconds} s)."
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


def _same_span(refusing: Window, window: Window) -> bool:
    """Whether two windows cover the same span (5h or week), the key's or the account's."""
    return refusing.name.removeprefix("account-") == window.name.removeprefix("account-")
