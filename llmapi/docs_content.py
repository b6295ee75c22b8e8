"""The fixed tables of the docs page. Limits and models come from the database; these describe the wire contract."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorRow:
    status: str
    type: str
    meaning: str
    action: str


ERRORS = [
    ErrorRow(
        "400",
        "invalid_request_error",
        "The body is not valid JSON, or a required field is missing or of the wrong type; the message names the field.",
        "Fix the request; sending it again unchanged will fail again.",
    ),
    ErrorRow(
        "401",
        "authentication_error",
        "No key was sent, or the key is mistyped, unknown or deleted.",
        "Check ANTHROPIC_API_KEY (or the x-api-key header).",
    ),
    ErrorRow("403", "permission_error", "The account is disabled.", "Contact support."),
    ErrorRow(
        "404",
        "not_found_error",
        "The path does not exist, or no route serves the model name.",
        "Check the URL and the model name.",
    ),
    ErrorRow("413", "request_too_large", "The body is larger than 32 MB.", "Send less: fewer or smaller attachments."),
    ErrorRow(
        "429",
        "rate_limit_error",
        "A window of your plan is used up; the message names it and its reset time.",
        "Wait for retry-after seconds, or upgrade your plan.",
    ),
    ErrorRow("500", "api_error", "A fault on our side.", "Retry shortly; quote the request-id if it persists."),
    ErrorRow("503 / 529", "overloaded_error", "No backend can answer right now.", "Retry with exponential backoff."),
]


@dataclass(frozen=True)
class HeaderRow:
    names: str
    meaning: str


RATE_LIMIT_HEADERS = [
    HeaderRow(
        "anthropic-ratelimit-requests-limit, -remaining, -reset",
        "The per-minute window, in the names Anthropic's SDKs read.",
    ),
    HeaderRow(
        "x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset",
        "The same per-minute window, for generic clients.",
    ),
    HeaderRow("llmapi-ratelimit-requests-5h-limit, -remaining, -reset", "The 5-hour window."),
    HeaderRow("llmapi-ratelimit-requests-week-limit, -remaining, -reset", "The weekly window."),
    HeaderRow(
        "anthropic-ratelimit-input-tokens-*, -output-tokens-*, -tokens-*",
        "Input and output tokens per minute, and the more restrictive of the two, where your plan limits them.",
    ),
    HeaderRow("retry-after", "On a 429: whole seconds until a request would be admitted."),
    HeaderRow(
        "x-should-retry: false",
        "On a 429 of the 5-hour or weekly window, so that SDKs stop instead of sleeping for hours.",
    ),
    HeaderRow("request-id", "On every response; quote it when you contact support."),
]

# What each of the three main models is good at; any other listed name works the same way.
MODEL_NOTES = {
    "claude-sonnet-4-6": "Everyday coding and tool use; Claude Code's default.",
    "claude-opus-4-6": "The hardest reasoning, architecture and design work.",
    "claude-haiku-4-5": "Quick, simple tasks at the lowest cost per token.",
}
