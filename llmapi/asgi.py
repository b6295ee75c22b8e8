"""The one ASGI application: `/v1/*` (and a key's own /llmapi/usage) goes to the gateway, the
health probes to gateway/health.py, /metrics to gateway/metrics.py, WebSockets to Channels,
everything else to Django.

The gateway is a plain ASGI application beside Django (DESIGN.md, the hot-path rules): its
requests never pass through Django's request handling or middleware. WebSockets (the overview's
live window bars) are authenticated by the Django session and accepted only from this site's origins.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmapi.settings")

# Django must be set up before anything imports models, the gateway included.
django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from accounts.consumers import UsageConsumer  # noqa: E402
from gateway.app import application as gateway_application  # noqa: E402
from gateway.health import PROBE_PATHS, probe_application  # noqa: E402
from gateway.key_usage import KEY_USAGE_PATH  # noqa: E402
from gateway.metrics import METRICS_PATH, metrics_application  # noqa: E402

GATEWAY_PREFIX = "/v1"

websocket_application = AllowedHostsOriginValidator(
    AuthMiddlewareStack(URLRouter([path("ws/usage/", UsageConsumer.as_asgi())]))
)


def is_gateway_path(path: str) -> bool:
    return path in (GATEWAY_PREFIX, KEY_USAGE_PATH) or path.startswith(GATEWAY_PREFIX + "/")


async def application(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        # Only the gateway holds process-wide resources (its upstream connection pool).
        await gateway_application(scope, receive, send)
    elif scope["type"] == "http" and is_gateway_path(scope["path"]):
        await gateway_application(scope, receive, send)
    elif scope["type"] == "http" and scope["path"] in PROBE_PATHS:
        await probe_application(scope, receive, send)
    elif scope["type"] == "http" and scope["path"] == METRICS_PATH:
        await metrics_application(scope, receive, send)
    elif scope["type"] == "websocket":
        await websocket_application(scope, receive, send)
    else:
        await django_application(scope, receive, send)
