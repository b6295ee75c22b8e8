"""AWS Bedrock's InvokeModel and InvokeModelWithResponseStream, made to answer as Anthropic's API.

The request: the model moves from the body to the URL (`/model/{id}/invoke`, or
`/invoke-with-response-stream` for a stream), the body takes Bedrock's `anthropic_version` and the
client's `anthropic-beta` header as `anthropic_beta`, and the request is signed with SigV4
(botocore) for the upstream's region. A credential is `ACCESS_KEY_ID:SECRET_ACCESS_KEY`, with
`:SESSION_TOKEN` for temporary ones; anything else is taken for a Bedrock API key (a bearer token).

The answer: a message is Anthropic's JSON already. A stream comes as AWS event-stream frames,
each carrying one Anthropic event (base64 JSON); every frame becomes its SSE event as soon as it is
complete, nothing held back. Bedrock's errors (an exception name and a message) become Anthropic's
statuses and error bodies, before the first byte and mid-stream alike, so that failover and the
client's SDK see what they would from Anthropic.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer, EventStreamMessage, ParserError
from yarl import URL

from gateway.errors import GatewayError, sse_error_event
from gateway.http import Request
from gateway.providers.translated import TranslatedResponse, backend_error_message
from gateway.routing import Credential, UpstreamInfo
from gateway.upstream_client import client_session, upstream_timeout
from gateway.wire import error_type_of_status

COUNTS_TOKENS = True  # with Bedrock's CountTokens, for the models it counts (the others: an estimate)
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
ANTHROPIC_VERSION = "bedrock-2023-05-31"
SIGNING_NAME = "bedrock"
METRICS_FIELD = "amazon-bedrock-invocationMetrics"  # Bedrock's own addition to message_stop

# Bedrock's exception names and the Anthropic status each one stands for. The ones that say our
# credential is wrong become 401, which the relay takes as "credential refused" (never the client's).
STATUS_OF_EXCEPTION = {
    "ValidationException": 400,
    "UnrecognizedClientException": 401,
    "InvalidSignatureException": 401,
    "IncompleteSignatureException": 401,
    "MissingAuthenticationTokenException": 401,
    "ExpiredTokenException": 401,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ThrottlingException": 429,
    "ServiceQuotaExceededException": 429,
    "ModelNotReadyException": 429,
    "ModelTimeoutException": 504,
    "ModelErrorException": 500,
    "InternalServerException": 500,
    "ModelStreamErrorException": 500,
    "ServiceUnavailableException": 529,
}


async def send(request: Request, upstream: UpstreamInfo, credential: Credential, body: bytes) -> TranslatedResponse:
    payload = orjson.loads(body)
    model, streams = str(payload.pop("model", "")), payload.pop("stream", False) is True
    payload["anthropic_version"] = ANTHROPIC_VERSION
    if betas := request_betas(request):
        payload["anthropic_beta"] = betas
    model_url = f"{upstream.base_url}/model/{quote(model, safe='')}"
    if request.path == COUNT_TOKENS_PATH:
        payload.setdefault("max_tokens", 1)  # what InvokeModel's body needs and a count request lacks
        data = orjson.dumps({"input": {"invokeModel": {"body": base64.b64encode(orjson.dumps(payload)).decode()}}})
        response = await post(f"{model_url}/count-tokens", data, upstream, credential, accept="application/json")
        return await counted(response, request.request_id)
    action = "invoke-with-response-stream" if streams else "invoke"
    accept = "application/vnd.amazon.eventstream" if streams else "application/json"
    response = await post(f"{model_url}/{action}", orjson.dumps(payload), upstream, credential, accept=accept)
    return translated(response, request.request_id)


async def post(
    url: str, data: bytes, upstream: UpstreamInfo, credential: Credential, *, accept: str
) -> aiohttp.ClientResponse:
    headers = {
        "content-type": "application/json",
        "accept": accept,
        "accept-encoding": "identity",  # relayed as it comes: nothing to decompress
        **dict(upstream.extra_headers),
    }
    headers.update(authorization(credential.secret, upstream.region, url, data, headers))
    return await client_session().post(
        URL(url, encoded=True), data=data, headers=headers, timeout=upstream_timeout(upstream), allow_redirects=False
    )


def request_betas(request: Request) -> list[str]:
    """Every beta the client asked for, over however many `anthropic-beta` headers."""
    values = (value.decode("latin-1") for name, value in request.raw_headers if name == b"anthropic-beta")
    return [beta.strip() for value in values for beta in value.split(",") if beta.strip()]


def authorization(secret: str, region: str, url: str, data: bytes, headers: dict[str, str]) -> dict[str, str]:
    """The headers that authenticate the request: SigV4's, or a Bedrock API key's bearer token."""
    access_key, _, rest = secret.partition(":")
    if not rest:
        return {"authorization": f"Bearer {secret}"}
    secret_key, _, token = rest.partition(":")
    signed = AWSRequest(method="POST", url=url, data=data, headers=headers)
    SigV4Auth(Credentials(access_key, secret_key, token or None), SIGNING_NAME, region).add_auth(signed)
    return {name: value for name, value in signed.headers.items() if name.lower() not in headers}


def translated(response: aiohttp.ClientResponse, request_id: str) -> TranslatedResponse:
    """Bedrock's answer as Anthropic's: the status its exception stands for, frames as SSE."""
    streams = response.content_type == "application/vnd.amazon.eventstream" and response.status < 400
    return TranslatedResponse(
        response,
        status=response.status if response.status < 400 else status_of_error(response),
        streams=streams,
        content=EventStreamContent(response, request_id) if streams else response.content,
        request_id=request_id,
    )


async def counted(response: aiohttp.ClientResponse, request_id: str) -> TranslatedResponse:
    """CountTokens' `{"inputTokens": N}` as Anthropic's `{"input_tokens": N}`. A request Bedrock will
    not count (most often a model it has no counter for) raises GatewayError, which the gateway
    answers with its own estimate (gateway/app.py count_tokens)."""
    status = response.status if response.status < 400 else status_of_error(response)
    if status in (400, 404):
        response.release()
        raise GatewayError(404, "Bedrock does not count the tokens of this request.")
    return TranslatedResponse(
        response,
        status=status,
        streams=False,
        content=response.content,
        request_id=request_id,
        answer=lambda body: orjson.dumps({"input_tokens": orjson.loads(body)["inputTokens"]}),
    )


def status_of_error(response: aiohttp.ClientResponse) -> int:
    exception = exception_name(response.headers.get("x-amzn-errortype", ""))
    return STATUS_OF_EXCEPTION.get(exception) or (500 if response.status >= 500 else 400)


class EventStreamContent:
    """Bedrock's event-stream frames as Anthropic's SSE events, frame by frame."""

    def __init__(self, response: aiohttp.ClientResponse, request_id: str) -> None:
        self._response = response
        self._request_id = request_id
        self._frames = EventStreamBuffer()

    async def iter_any(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_any():
            self._frames.add_data(chunk)
            try:
                events = b"".join(self._sse_event(frame) for frame in self._frames)
            except (ParserError, ValueError, KeyError, TypeError, binascii.Error) as exc:
                raise aiohttp.ClientPayloadError(f"malformed Bedrock event stream: {type(exc).__name__}") from None
            if events:
                yield events

    def at_eof(self) -> bool:
        return self._response.content.at_eof()

    def _sse_event(self, frame: EventStreamMessage) -> bytes:
        message_type = frame.headers.get(":message-type")
        if message_type in ("exception", "error"):
            name = frame.headers.get(":exception-type") or frame.headers.get(":error-code") or ""
            status = STATUS_OF_EXCEPTION.get(exception_name(str(name)), 500)
            return sse_error_event(error_type_of_status(status), frame_message(frame.payload), self._request_id)
        if message_type != "event" or frame.headers.get(":event-type") != "chunk":
            return b""
        return sse_of_chunk(base64.b64decode(orjson.loads(frame.payload)["bytes"]))


def sse_of_chunk(data: bytes) -> bytes:
    """One Anthropic event (JSON) as SSE; Bedrock's metrics leave message_stop, which Anthropic's lacks."""
    event = orjson.loads(data)
    if METRICS_FIELD in event:
        del event[METRICS_FIELD]
        data = orjson.dumps(event)
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + data + b"\n\n"


def exception_name(value: str) -> str:
    """`ThrottlingException:http://...` (a header) or `throttlingException` (a frame) as `ThrottlingException`."""
    name = value.split(":", 1)[0].strip()
    return name[:1].upper() + name[1:]


def frame_message(payload: bytes) -> str:
    try:
        return backend_error_message(orjson.loads(payload), payload)
    except orjson.JSONDecodeError:
        return backend_error_message(None, payload)
