"""A stand-in for AWS Bedrock's runtime API, for the gateway's tests.

It speaks Bedrock's side of the wire: InvokeModel and InvokeModelWithResponseStream on
`/model/{id}/invoke[-with-response-stream]`, SigV4 checked against the credentials it knows (or a
Bedrock API key as a bearer token), the body in Bedrock's shape (no `model` or `stream`, an
`anthropic_version`), streams as binary AWS event-stream frames, errors as an exception name and a
message. What to answer it asks the Anthropic simulator behind it (gateway/simulator.py), so that
the same scenarios (`scenario:tool_use`, `scenario:thinking`, ...) play on both kinds of backend.
"""

from __future__ import annotations

import base64
import hmac
import re
import struct
import zlib
from typing import Any
from urllib.parse import unquote

import aiohttp
import orjson
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.stand_in_server import StandInServer

ANTHROPIC_VERSION = "bedrock-2023-05-31"
AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r" ?SignedHeaders=(?P<signed>[^,]+), ?Signature=(?P<signature>[0-9a-f]{64})$"
)
# Anthropic's error types as the Bedrock exceptions that carry them.
EXCEPTION_OF_ERROR = {
    "invalid_request_error": (400, "ValidationException"),
    "not_found_error": (404, "ResourceNotFoundException"),
    "rate_limit_error": (429, "ThrottlingException"),
    "overloaded_error": (503, "ServiceUnavailableException"),
    "api_error": (500, "InternalServerException"),
}


class BedrockStandIn(StandInServer):
    """`secrets` maps access key ids to secret keys; `api_keys` are the bearer tokens it accepts.
    `requests` holds what reached it, after authentication: path, headers, body."""

    name = "bedrock"

    def __init__(self, region: str = "us-east-1") -> None:
        super().__init__()
        self.region = region
        self.secrets = {"AKIDSTANDIN": "stand-in-secret-access-key"}
        self.api_keys = {"bedrock-api-key-stand-in"}
        self.corrupt_frame: int | None = None  # the frame of each stream to send with a wrong checksum

    @property
    def credential(self) -> str:
        """A credential of the gateway's form for the known access key."""
        access_key, secret_key = next(iter(self.secrets.items()))
        return f"{access_key}:{secret_key}"

    def reset(self) -> None:
        super().reset()
        self.corrupt_frame = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/model/{model_id}/{action}", self._invoke)

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if refusal := self._authentication_error(request, body):
            return refusal
        action = request.match_info["action"]
        if action not in ("invoke", "invoke-with-response-stream", "count-tokens"):
            return bedrock_error(404, "UnknownOperationException", "No such operation.")
        payload = orjson.loads(body)
        self.requests.append({"path": request.raw_path, "headers": dict(request.headers), "body": payload})
        if action == "count-tokens":
            return await self._count_tokens(unquote(request.match_info["model_id"]), payload)
        if "model" in payload or "stream" in payload or payload.get("anthropic_version") != ANTHROPIC_VERSION:
            return bedrock_error(400, "ValidationException", "Malformed input request: extraneous key or version.")
        streams = action == "invoke-with-response-stream"
        anthropic_body = {key: value for key, value in payload.items() if not key.startswith("anthropic_")}
        anthropic_body.update(model=unquote(request.match_info["model_id"]), stream=streams)
        headers = {"x-api-key": "sk-ant-bedrock-behind", "anthropic-version": "2023-06-01"}
        if betas := payload.get("anthropic_beta"):
            headers["anthropic-beta"] = ",".join(betas)
        async with self.session.post(
            f"{self.simulator.base_url}/v1/messages", data=orjson.dumps(anthropic_body), headers=headers
        ) as answer:
            if answer.status != 200:
                return bedrock_error_of(answer.status, await answer.read())
            if not streams:
                return web.Response(body=await answer.read(), content_type="application/json")
            return await self._stream(request, answer)

    async def _count_tokens(self, model: str, payload: dict[str, Any]) -> web.Response:
        """CountTokens: the InvokeModel body comes base64-encoded; inference profiles are not counted."""
        if model.split(".", 1)[0] in ("us", "eu", "apac", "global"):
            return bedrock_error(400, "ValidationException", "The provided model doesn't support counting tokens.")
        invoke_body = orjson.loads(base64.b64decode(payload["input"]["invokeModel"]["body"]))
        if "model" in invoke_body or invoke_body.get("anthropic_version") != ANTHROPIC_VERSION:
            return bedrock_error(400, "ValidationException", "Malformed input request: extraneous key or version.")
        anthropic_body = {key: value for key, value in invoke_body.items() if not key.startswith("anthropic_")}
        async with self.session.post(
            f"{self.simulator.base_url}/v1/messages/count_tokens",
            data=orjson.dumps({**anthropic_body, "model": model}),
            headers={"x-api-key": "sk-ant-bedrock-behind", "anthropic-version": "2023-06-01"},
        ) as answer:
            if answer.status != 200:
                return bedrock_error_of(answer.status, await answer.read())
            return web.json_response({"inputTokens": (await answer.json())["input_tokens"]})

    async def _stream(self, request: web.Request, answer: aiohttp.ClientResponse) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "application/vnd.amazon.eventstream"})
        await response.prepare(request)
        pending, sent = b"", 0
        async for chunk in answer.content.iter_any():
            pending += chunk
            *events, pending = pending.split(b"\n\n")
            for event in events:
                frame = frame_of_sse_event(event)
                if sent == self.corrupt_frame:
                    frame = frame[:-1] + bytes([frame[-1] ^ 0xFF])  # the message checksum no longer holds
                await response.write(frame)
                sent += 1
        await response.write_eof()
        return response

    def _authentication_error(self, request: web.Request, body: bytes) -> web.Response | None:
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer "):
            if header.removeprefix("Bearer ") in self.api_keys:
                return None
            return bedrock_error(403, "UnrecognizedClientException", "The security token included is invalid.")
        match = AUTHORIZATION.match(header)
        if match is None:
            return bedrock_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        secret = self.secrets.get(match["key"])
        if secret is None or match["region"] != self.region or match["service"] != "bedrock":
            return bedrock_error(403, "UnrecognizedClientException", "The security token included is invalid.")
        if not hmac.compare_digest(expected_signature(request, body, match, secret), match["signature"]):
            return bedrock_error(403, "InvalidSignatureException", "The request signature does not match.")
        return None


def expected_signature(request: web.Request, body: bytes, match: re.Match[str], secret: str) -> str:
    """SigV4 worked out again over what arrived: the path as sent, the headers it says it signed."""
    signed_names = match["signed"].split(";")
    headers = {name: request.headers.get(name, "") for name in signed_names}
    url = f"http://{request.host}{request.raw_path}"
    signed = AWSRequest(method=request.method, url=url, data=body, headers=headers)
    signed.context["timestamp"] = request.headers.get("x-amz-date", "")
    token = request.headers.get("x-amz-security-token")
    auth = SigV4Auth(Credentials(match["key"], secret, token), match["service"], match["region"])
    return auth.signature(auth.string_to_sign(signed, auth.canonical_request(signed)), signed)


def bedrock_error(status: int, exception: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"message": message}),
        content_type="application/json",
        headers={"x-amzn-ErrorType": f"{exception}:http://internal.amazon.com/coral/com.amazon.bedrock/"},
    )


def bedrock_error_of(status: int, body: bytes) -> web.Response:
    """The simulator's Anthropic error as Bedrock would have put it."""
    error = orjson.loads(body).get("error", {})
    status, exception = EXCEPTION_OF_ERROR.get(error.get("type"), (status, "InternalServerException"))
    return bedrock_error(status, exception, error.get("message", ""))


def frame_of_sse_event(event: bytes) -> bytes:
    """One SSE event as Bedrock frames it: a chunk event around the base64 JSON, or an exception."""
    data = orjson.loads(event.split(b"data: ", 1)[1])
    if data["type"] == "error":
        _, exception = EXCEPTION_OF_ERROR.get(data["error"]["type"], (500, "InternalServerException"))
        name = exception[0].lower() + exception[1:]
        headers = {":message-type": "exception", ":exception-type": name, ":content-type": "application/json"}
        return event_stream_frame(headers, orjson.dumps({"message": data["error"]["message"]}))
    if data["type"] == "message_stop":
        data["amazon-bedrock-invocationMetrics"] = {"inputTokenCount": 1, "outputTokenCount": 1}
    payload = orjson.dumps({"bytes": base64.b64encode(orjson.dumps(data)).decode(), "p": "abcdef"})
    headers = {":message-type": "event", ":event-type": "chunk", ":content-type": "application/json"}
    return event_stream_frame(headers, payload)


def event_stream_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """An AWS event-stream message: prelude (lengths and their CRC32), string headers, payload, CRC32."""
    encoded_headers = b"".join(
        bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(value)) + value.encode()
        for name, value in headers.items()
    )
    prelude = struct.pack(">II", 12 + len(encoded_headers) + len(payload) + 4, len(encoded_headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded_headers + payload
    return message + struct.pack(">I", zlib.crc32(message))
