"""GET /healthz and /readyz, for load balancers, orchestrators and rolling restarts.

Outside /v1 and every quota: no key is asked for and nothing is counted. `/healthz` answers from
the process alone (it lives, its event loop turns). `/readyz` asks what serving a request needs:
the database (`SELECT 1`, on a thread of its own so that it never waits behind the gateway's
other database work) and, when REDIS_URL is set, Redis (PING), and the gateway's own Redis when that
is another (GATEWAY_REDIS_URL, a Redis Cluster say: every primary); each within READY_TIMEOUT_SECONDS.
It answers 200 when all answered, else 503 naming what did not; the reason is only a kind
("unreachable", "timeout"), never an error's text, which could name hosts or users. A process
that is draining (SIGTERM, gateway/shutdown.py) answers 503 at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import orjson
import redis.asyncio
from django.conf import settings
from django.db import connection

from gateway.cache import with_fresh_connection
from gateway.http import Receive, Scope, Send, send_whole
from gateway.redis_clients import separate_from_redis_url
from gateway.shutdown import shutdown_state
from gateway.side_redis import plain_side_redis, side_redis

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
PROBE_PATHS = frozenset({HEALTH_PATH, READY_PATH})
READY_TIMEOUT_SECONDS = 1.0
METHODS = frozenset({"GET", "HEAD"})

_database_thread: ThreadPoolExecutor | None = None


async def probe_application(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["method"] not in METHODS:
        await _answer(send, scope, 405, {"error": "Use GET or HEAD."}, [(b"allow", b"GET, HEAD")])
    elif scope["path"] == HEALTH_PATH:
        await _answer(send, scope, 200, {"status": "ok"})
    elif shutdown_state.draining:
        # Stopping: a balancer still asking on a kept-alive connection sends the next requests elsewhere.
        await _answer(send, scope, 503, {"status": "draining"})
    else:
        checks = await readiness()
        ready = all(outcome == "ok" for outcome in checks.values())
        await _answer(send, scope, 200 if ready else 503, {"status": "ok" if ready else "unavailable", **checks})


async def readiness() -> dict[str, str]:
    """Each dependency and how it answered: "ok", "timeout" or "unreachable"."""
    checks: dict[str, Callable[[], Awaitable[object]]] = {"database": _database_answers}
    if settings.REDIS_URL:
        checks["redis"] = plain_side_redis().ping
    if separate_from_redis_url():
        checks["gateway_redis"] = _gateway_redis_answers
    outcomes = await asyncio.gather(*(_outcome(check) for check in checks.values()))
    return dict(zip(checks, outcomes, strict=True))


async def _gateway_redis_answers() -> None:
    client = side_redis()
    if isinstance(client, redis.asyncio.RedisCluster):
        await client.ping(target_nodes=redis.asyncio.RedisCluster.PRIMARIES)  # every slot's owner
    else:
        await client.ping()


async def _outcome(check: Callable[[], Awaitable[object]]) -> str:
    try:
        await asyncio.wait_for(check(), READY_TIMEOUT_SECONDS)
    except TimeoutError:
        return "timeout"
    except Exception:
        return "unreachable"
    return "ok"


async def _database_answers() -> None:
    global _database_thread  # one per process, made on first use
    if _database_thread is None:
        _database_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-readiness")
    await asyncio.get_running_loop().run_in_executor(_database_thread, with_fresh_connection(_select_one))


def _select_one() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def _answer(send: Send, scope: Scope, status: int, payload: dict[str, str], headers=()) -> None:
    body = orjson.dumps(payload)
    head = [(b"cache-control", b"no-store"), *headers]
    await send_whole(send, status, body, b"application/json", head, head_only=scope["method"] == "HEAD")
