"""The wire contract's constants (../shared/anthropic-wire.md), in one place."""

from __future__ import annotations

DEFAULT_ANTHROPIC_VERSION = b"2023-06-01"

# Hop-by-hop headers (RFC 9110, 7.6.1) and the length, which the HTTP layer recomputes: they
# describe one connection, so they never cross the gateway in either direction.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authenticate",
        b"content-length",
    }
)

# Request headers that never reach an upstream: the client's credentials (replaced by ours),
# the host, cookies, the encoding we choose, and the addresses our reverse proxy adds (a
# provider has no business knowing our users' addresses).
REQUEST_HEADERS_NOT_FORWARDED = HOP_BY_HOP | {
    b"x-api-key",
    b"authorization",
    b"proxy-authorization",
    b"proxy-connection",
    b"host",
    b"cookie",
    b"accept-encoding",
    b"expect",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-forwarded-port",
    b"x-real-ip",
    b"forwarded",
    b"via",
}

# Response headers of an upstream that never reach the client: what the server recomputes, the
# upstream's own ids and cookies, and its rate-limit and organisation headers, which describe our
# account with the provider, not the client's.
RESPONSE_HEADERS_NOT_FORWARDED = HOP_BY_HOP | {
    b"content-encoding",
    b"date",
    b"server",
    b"set-cookie",
    b"request-id",
    b"x-request-id",
    b"anthropic-organization-id",
    b"via",
    b"cf-ray",
    b"cf-cache-status",
    b"x-envoy-upstream-service-time",
    b"x-should-retry",
    b"retry-after",
    b"retry-after-ms",
}
RESPONSE_HEADER_PREFIXES_NOT_FORWARDED = (b"anthropic-ratelimit-", b"x-ratelimit-")

# Upstream answers after which the next credential or backend is tried (before the first byte).
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
# The upstream answer that says our credential is bad, not the client's: never shown as theirs.
# (A 403 is not one: it refuses what the request asks for, e.g. a model or beta the organisation
# lacks, so a client could provoke it; it goes to the client as the permission_error it is.)
CREDENTIAL_REFUSED_STATUS = 401
# Answers after which the credential itself (not the whole backend) is cooled down.
COOLDOWN_STATUSES = frozenset({429, 529})

ERROR_TYPE_OF_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type_of_status(status: int) -> str:
    """Anthropic's error type for a status; statuses it has no name for go by their class."""
    return ERROR_TYPE_OF_STATUS.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


SSE_CONTENT_TYPE = b"text/event-stream"
JSON_CONTENT_TYPE = b"application/json"
