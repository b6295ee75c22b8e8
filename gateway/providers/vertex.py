"""Google Vertex AI's rawPredict and streamRawPredict for Anthropic's models.

The request: the model moves from the body to the URL
(`/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:rawPredict`, or
`:streamRawPredict` for a stream, `count-tokens:rawPredict` for count_tokens), the body takes
Vertex's `anthropic_version`, and the bearer token is an OAuth access token of the upstream's
service account (google-auth), fetched on a thread and kept until shortly before it expires. A
credential is the service account's JSON key; the project is the upstream's, else the key's.

The answer: Anthropic's JSON and SSE as they are. Errors the model raises come in Anthropic's
shape already; Google's own (quota, permissions) are `{"error": {"code", "message", "status"}}`
and become Anthropic's by their status.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC
from urllib.parse import quote

import google.auth.exceptions
import google.auth.transport.requests
import orjson
from google.oauth2 import service_account

from gateway.http import Request
from gateway.providers import CredentialUnusable
from gateway.providers.translated import TranslatedResponse
from gateway.routing import Credential, UpstreamInfo
from gateway.upstream_client import client_session, upstream_timeout

COUNTS_TOKENS = True
ANTHROPIC_VERSION = "vertex-2023-10-16"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REFRESH_MARGIN_SECONDS = 300  # a token this close to its expiry is replaced before use
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"


async def send(request: Request, upstream: UpstreamInfo, credential: Credential, body: bytes) -> TranslatedResponse:
    token = await access_tokens.token_for(credential, wait_seconds=upstream.connect_timeout)
    payload = orjson.loads(body)
    payload["anthropic_version"] = ANTHROPIC_VERSION
    location = f"{upstream.base_url}/v1/projects/{upstream.project or token.project}/locations/{upstream.region}"
    if request.path == COUNT_TOKENS_PATH:
        url = f"{location}/publishers/anthropic/models/count-tokens:rawPredict"  # the model stays in the body
    else:
        model = str(payload.pop("model", ""))
        method = "streamRawPredict" if payload.get("stream") is True else "rawPredict"
        url = f"{location}/publishers/anthropic/models/{quote(model, safe='')}:{method}"
    response = await client_session().post(
        url,
        data=orjson.dumps(payload),
        headers=vertex_headers(request, upstream, token.value),
        timeout=upstream_timeout(upstream),
        allow_redirects=False,
    )
    streams = response.content_type == "text/event-stream" and response.status < 400
    return TranslatedResponse(
        response, status=response.status, streams=streams, content=response.content, request_id=request.request_id
    )


def vertex_headers(request: Request, upstream: UpstreamInfo, token: str) -> list[tuple[str, str]]:
    """The client's betas (Vertex reads them from the header) with our token; nothing else of the client's."""
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in request.raw_headers
        if name == b"anthropic-beta"
    ]
    headers += [
        ("content-type", "application/json"),
        ("authorization", f"Bearer {token}"),
        ("accept-encoding", "identity"),
        *upstream.extra_headers,
    ]
    return headers


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    expires_at: float  # time.time()
    project: str  # the service account's project


class AccessTokens:
    """One OAuth access token per credential, fetched once at a time and reused until it nears expiry."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[int, str], AccessToken] = {}
        self._fetching: dict[tuple[int, str], asyncio.Task[AccessToken]] = {}

    async def token_for(self, credential: Credential, wait_seconds: float) -> AccessToken:
        """The credential's token, fetched if need be; waits `wait_seconds` at most for Google
        (a TimeoutError, which fails the attempt over like a backend that does not answer)."""
        key = (credential.id, credential.secret)  # a credential edited in the admin is a new key
        token = self._tokens.get(key)
        if token is not None and token.expires_at - REFRESH_MARGIN_SECONDS > time.time():
            return token
        if (fetching := self._fetching.get(key)) is None:
            fetching = asyncio.create_task(asyncio.to_thread(fetch_token, credential.secret), name="vertex-token")
            self._fetching[key] = fetching
            fetching.add_done_callback(lambda task: self._fetched(key, task))
        try:
            token = await asyncio.wait_for(asyncio.shield(fetching), wait_seconds)
        except (ValueError, KeyError, TypeError, AttributeError, google.auth.exceptions.GoogleAuthError) as exc:
            # A key that cannot be read or that Google refuses: our credential, never the client's.
            raise CredentialUnusable(f"no Vertex access token ({type(exc).__name__})") from None
        self._tokens = {stored: kept for stored, kept in self._tokens.items() if stored[0] != credential.id}
        self._tokens[key] = token
        return token

    def _fetched(self, key: tuple[int, str], task: asyncio.Task[AccessToken]) -> None:
        self._fetching.pop(key, None)
        if not task.cancelled():
            task.exception()  # seen here, even when every waiter gave up before it ended

    def forget(self) -> None:
        self._tokens.clear()


def fetch_token(service_account_json: str) -> AccessToken:
    """Exchange the service account's signed assertion for an access token (blocking: a thread's work)."""
    info = orjson.loads(service_account_json)
    credentials = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
    credentials.refresh(google.auth.transport.requests.Request())
    # google-auth gives the expiry as a naive datetime in UTC.
    expiry = credentials.expiry.replace(tzinfo=UTC).timestamp() if credentials.expiry else time.time() + 3000
    return AccessToken(credentials.token, expiry, str(info.get("project_id", "")))


access_tokens = AccessTokens()
