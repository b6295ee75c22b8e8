"""A stand-in for Google Vertex AI's Anthropic endpoints and Google's OAuth token endpoint, for tests.

The token endpoint takes a service account's signed JWT assertion (checked against the account's
public key) and gives out access tokens. rawPredict, streamRawPredict and count-tokens take those
tokens, the project and location in the path, and a body with Vertex's `anthropic_version` and no
`model` (count-tokens keeps it); what to answer they ask the Anthropic simulator behind, whose
answers and errors Vertex passes through as they are. Quota refusals are Google's own
(`{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", ...}}`), as Vertex sends them.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions, jwt

from tests.stand_in_server import StandInServer

ANTHROPIC_VERSION = "vertex-2023-10-16"
PROJECT = "stand-in-project"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
AUDIENCE = "https://oauth2.googleapis.com/token"  # what a service account's assertion names, wherever it goes


class VertexStandIn(StandInServer):
    """Vertex and its token endpoint on one loopback port."""

    name = "vertex"

    def __init__(self, region: str = "us-east5") -> None:
        super().__init__()
        self.region = region
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        self._public_pem = (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        self.token_requests = 0
        self.quota_refusals = 0  # the next this many predictions are refused with Google's 429
        self._tokens: set[str] = set()

    def service_account_key(self, private_pem: str | None = None) -> str:
        """The JSON key of the stand-in's service account, as Google's console gives it."""
        return orjson.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "stand-in-key",
                "private_key": private_pem or self._private_pem,
                "client_email": f"gateway@{PROJECT}.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"{self.base_url}/token",
            }
        ).decode()

    def reset(self) -> None:
        super().reset()
        self.token_requests = 0
        self.quota_refusals = 0

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/token", self._token)
        app.router.add_post(
            "/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{target}", self._predict
        )

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        try:
            claims = jwt.decode(str(form.get("assertion", "")), certs=self._public_pem, audience=AUDIENCE)
        except (ValueError, exceptions.GoogleAuthError) as exc:
            return web.json_response({"error": "invalid_grant", "error_description": str(exc)}, status=400)
        if form.get("grant_type") != JWT_BEARER or "cloud-platform" not in claims.get("scope", ""):
            return web.json_response({"error": "invalid_scope"}, status=400)
        token = "ya29.stand-in-" + secrets.token_urlsafe(16)
        self._tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    async def _predict(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("authorization", "").removeprefix("Bearer ") not in self._tokens:
            return google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        project, location = request.match_info["project"], request.match_info["location"]
        if (project, location) != (PROJECT, self.region):
            return google_error(404, "NOT_FOUND", f"Publisher model in {project}/{location} not found.")
        model, _, method = request.match_info["target"].rpartition(":")
        payload = orjson.loads(await request.read())
        self.requests.append({"path": request.raw_path, "headers": dict(request.headers), "body": dict(payload)})
        if payload.pop("anthropic_version", None) != ANTHROPIC_VERSION or ("model" in payload) != (
            model == "count-tokens"
        ):
            return google_error(400, "INVALID_ARGUMENT", "anthropic_version or model misplaced.")
        if method not in ("rawPredict", "streamRawPredict"):
            return google_error(400, "INVALID_ARGUMENT", f"unknown method {method}")
        if self.quota_refusals > 0:
            self.quota_refusals -= 1
            return google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for aiplatform.googleapis.com.")
        return await self._ask_simulator(request, model, payload)

    async def _ask_simulator(self, request: web.Request, model: str, payload: dict[str, Any]) -> web.StreamResponse:
        headers = {"x-api-key": "sk-ant-vertex-behind", "anthropic-version": "2023-06-01"}
        if betas := request.headers.get("anthropic-beta"):
            headers["anthropic-beta"] = betas
        path = "/v1/messages/count_tokens" if model == "count-tokens" else "/v1/messages"
        body = payload if model == "count-tokens" else {**payload, "model": model}
        async with self.session.post(
            self.simulator.base_url + path, data=orjson.dumps(body), headers=headers
        ) as answer:
            content_type = answer.headers.get("content-type", "application/json")
            if not content_type.startswith("text/event-stream"):
                return web.Response(status=answer.status, body=await answer.read(), content_type="application/json")
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            async for chunk in answer.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response


def google_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": status, "message": message, "status": code}}, status=status)
