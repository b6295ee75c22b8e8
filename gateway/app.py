"""The gateway's ASGI application, mounted on `/v1` by llmapi.asgi.

Until the gateway issue fills it in, every path answers 404 in Anthropic's error shape.
"""

from __future__ import annotations

from gateway.errors import error_body, new_request_id


async def lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    request_id = new_request_id()
    body = error_body("not_found_error", f"Not found: {scope['method']} {scope['path']}", request_id)
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
