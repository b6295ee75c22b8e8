"""GET /v1/models and /v1/models/{id}: the models this deployment routes, in Anthropic's shapes."""

from __future__ import annotations

from urllib.parse import parse_qs

from gateway.errors import GatewayError
from gateway.routing import Route, RouteTable

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


def model_object(model_id: str, route: Route) -> dict[str, object]:
    return {
        "type": "model",
        "id": model_id,
        "display_name": route.display_name if route.pattern == model_id else model_id,
        "created_at": route.created_at.isoformat().replace("+00:00", "Z"),
    }


def model_page(table: RouteTable, query_string: bytes) -> dict[str, object]:
    """One page of the listed models, newest first, with Anthropic's cursor parameters."""
    query = {name: values[-1] for name, values in parse_qs(query_string.decode("latin-1")).items()}
    limit = _limit(query.get("limit"))
    routes = sorted(table.listed_routes(), key=lambda route: (route.created_at, route.pattern), reverse=True)
    ids = [route.pattern for route in routes]
    start, end = 0, len(routes)
    if "after_id" in query:
        start = _position(ids, query["after_id"], "after_id") + 1
    if "before_id" in query:
        end = _position(ids, query["before_id"], "before_id")
    window = routes[start:end]
    page = window[-limit:] if "before_id" in query and "after_id" not in query else window[:limit]
    data = [model_object(route.pattern, route) for route in page]
    return {
        "data": data,
        "has_more": len(window) > len(page),
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def model_lookup(table: RouteTable, model_id: str) -> dict[str, object]:
    """A listed model, or any name a route will serve (a new name caught by a glob)."""
    if table.candidates(model_id):
        return model_object(model_id, table.matching_routes(model_id)[0])
    raise GatewayError(404, f"model: {model_id}")


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise GatewayError(400, f"limit: Input should be an integer between 1 and {MAX_LIMIT}")
    return int(raw)


def _position(ids: list[str], model_id: str, name: str) -> int:
    try:
        return ids.index(model_id)
    except ValueError:
        raise GatewayError(400, f"{name}: unknown model id {model_id!r}") from None
