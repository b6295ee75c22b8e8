"""Which peers may name the client through X-Forwarded-For: TRUSTED_PROXIES, in the ASGI server's terms."""

from __future__ import annotations

from django.conf import settings


def forwarded_allow_ips() -> str:
    """uvicorn's `forwarded_allow_ips` (`--forwarded-allow-ips`) from TRUSTED_PROXIES.

    Empty when no proxy is configured, so that nobody is trusted: uvicorn's own default trusts
    127.0.0.1, which would let any local client (a test, a sidecar) choose its own address.
    """
    return ",".join(settings.TRUSTED_PROXIES)
