"""From a model name to the ordered backends that may serve it, and each backend's health.

The whole route table is small, so each process loads it at once and keeps it (with a TTL and
invalidation on change). A model name goes through every route it matches, most specific first
(an exact name, then globs by the length of their literal part); their targets are concatenated,
so an exact route without targets of its own falls through to its family glob.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase

from django.conf import settings

from gateway import metrics
from gateway.cache import TtlCache, in_database_thread
from gateway.credential_health import credential_subject, reports, upstream_subject
from gateway.models import ModelRoute, Upstream, aws_region_of
from llmapi.invalidation import add_local_listener

GLOB_CHARACTERS = "*?["


@dataclass(frozen=True, slots=True)
class Credential:
    id: int
    secret: str


@dataclass(frozen=True, slots=True)
class UpstreamInfo:
    id: int
    name: str
    kind: str
    family: str
    base_url: str
    region: str  # Bedrock's AWS region, Vertex's location; "" for Anthropic
    project: str  # Vertex's project, when not the service account's
    extra_headers: tuple[tuple[str, str], ...]
    connect_timeout: float
    read_timeout: float
    priority: int
    weight: int
    credentials: tuple[Credential, ...]


@dataclass(frozen=True, slots=True)
class Target:
    upstream: UpstreamInfo
    upstream_model: str  # empty: the requested name
    position: int


@dataclass(frozen=True, slots=True)
class Route:
    pattern: str
    display_name: str
    listed: bool
    created_at: datetime
    targets: tuple[Target, ...]

    @property
    def is_glob(self) -> bool:
        return any(char in self.pattern for char in GLOB_CHARACTERS)

    @property
    def specificity(self) -> tuple[int, int]:
        literal = sum(char not in GLOB_CHARACTERS for char in self.pattern)
        return (0 if self.is_glob else 1, literal)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One way to serve a request: a backend and the model name it gets."""

    upstream: UpstreamInfo
    upstream_model: str


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the table knows of one model name, worked out once per table."""

    routes: tuple[Route, ...]
    groups: tuple[tuple[Target, ...], ...]  # targets of equal preference, most preferred first


@dataclass
class RouteTable:
    routes: list[Route]  # most specific first
    _resolved: dict[str, Resolution] = field(default_factory=dict)

    def resolve(self, model: str) -> Resolution:
        resolution = self._resolved.get(model)
        if resolution is None:
            routes = tuple(route for route in self.routes if _matches(route, model))
            groups = tuple(group for route in routes for group in _groups_of_equal_preference(route.targets))
            resolution = Resolution(routes, groups)
            if len(self._resolved) < 10_000:  # bounded: model names come from clients
                self._resolved[model] = resolution
        return resolution

    def matching_routes(self, model: str) -> tuple[Route, ...]:
        return self.resolve(model).routes

    def candidates(self, model: str, session: str = "") -> list[Candidate]:
        """Backends for `model` in the order to try them. Equal ones come in the session's own
        order (`in_session_order`), or shuffled by weight for a request of no session."""
        seen: set[tuple[int, str]] = set()
        ordered: list[Candidate] = []
        for group in self.resolve(model).groups:
            for target in in_session_order(group, session) if session else _shuffled_by_weight(group):
                upstream_model = target.upstream_model or model
                if (target.upstream.id, upstream_model) not in seen:
                    seen.add((target.upstream.id, upstream_model))
                    ordered.append(Candidate(target.upstream, upstream_model))
        return ordered

    def listed_routes(self) -> list[Route]:
        return [route for route in self.routes if route.listed and self.candidates(route.pattern)]


def _matches(route: Route, model: str) -> bool:
    return fnmatchcase(model, route.pattern) if route.is_glob else model == route.pattern


def _preference(target: Target) -> tuple[int, int]:
    return (target.position, target.upstream.priority)


def _groups_of_equal_preference(targets: tuple[Target, ...]) -> list[tuple[Target, ...]]:
    """Targets by (position in the route, upstream priority), lowest first."""
    ordered = sorted(targets, key=_preference)
    return [tuple(group) for _, group in itertools.groupby(ordered, key=_preference)]


def _shuffled_by_weight(targets: tuple[Target, ...]) -> tuple[Target, ...] | list[Target]:
    if len(targets) < 2:
        return targets
    # Weighted order without replacement: a larger weight comes first more often.
    keyed = [(random.random() ** (1.0 / max(target.upstream.weight, 1)), target) for target in targets]  # noqa: S311
    return [target for _, target in sorted(keyed, key=lambda pair: pair[0], reverse=True)]


def in_session_order(targets: tuple[Target, ...], session: str) -> list[Target]:
    """The targets ranked for one session, the same in every process (rendezvous hashing).

    Prompt caches live per provider account: a session that always starts at the same backend
    finds its cache warm there. When that backend is out the session moves to the next of its
    own order, and comes back once the first recovers; each backend's share of the sessions
    follows its weight, and adding or removing one moves only the sessions it gains or loses.
    """
    if len(targets) < 2:
        return list(targets)
    return sorted(targets, key=lambda target: session_rank(session, target.upstream.id, target.upstream.weight))


def session_rank(session: str, member: int, weight: int = 1) -> float:
    """Smaller ranks first. Weighted rendezvous hashing: -ln(u) / weight, u uniform in (0, 1) per (session, member)."""
    digest = hashlib.blake2b(f"{session}\x00{member}".encode(), digest_size=8).digest()
    uniform = (int.from_bytes(digest, "big") + 1) / 2**64
    return -math.log(uniform) / max(weight, 1)


def _upstream_info(upstream: Upstream) -> UpstreamInfo:
    return UpstreamInfo(
        id=upstream.pk,
        name=upstream.name,
        kind=upstream.kind,
        family=upstream.family,
        base_url=upstream.base_url.rstrip("/"),
        region=upstream.region or aws_region_of(upstream.base_url),
        project=upstream.project,
        extra_headers=tuple((str(name), str(value)) for name, value in upstream.extra_headers.items()),
        connect_timeout=upstream.connect_timeout,
        read_timeout=upstream.read_timeout,
        priority=upstream.priority,
        weight=upstream.weight,
        credentials=tuple(
            Credential(id=credential.pk, secret=credential.secret)
            for credential in upstream.credentials.all()
            if credential.enabled
        ),
    )


def load_route_table() -> RouteTable:
    from gateway.providers import adapter_for  # the adapters import this module

    upstreams = {
        upstream.pk: _upstream_info(upstream)
        for upstream in Upstream.objects.filter(enabled=True).prefetch_related("credentials")
    }
    routes = []
    for route in ModelRoute.objects.filter(enabled=True).prefetch_related("targets"):
        targets = tuple(
            Target(upstreams[target.upstream_id], target.upstream_model, target.position)
            for target in route.targets.all()
            if target.upstream_id in upstreams and upstreams[target.upstream_id].credentials
        )
        routes.append(
            Route(
                pattern=route.pattern,
                display_name=route.display_name or route.pattern,
                listed=route.listed and not route.is_glob,
                created_at=route.released_at or route.created_at,
                targets=targets,
            )
        )
    routes.sort(key=lambda route: route.specificity, reverse=True)
    for kind in {upstream.kind for upstream in upstreams.values()}:
        adapter_for(kind)  # imported here, on the loading thread, rather than in a request
    return RouteTable(routes)


_tables: TtlCache[str, RouteTable] = TtlCache(settings.GATEWAY_CACHE_TTL_SECONDS)
_load_route_table = in_database_thread(load_route_table)


async def route_table() -> RouteTable:
    return await _tables.get_or_load("routes", _load_route_table)


def _invalidate(topic: str) -> None:
    if topic in {"routes", "*"}:
        _tables.clear()


add_local_listener(_invalidate)


class HealthBoard:
    """What this process has learnt about its backends: cooling credentials, open circuits.

    A credential that got 429/529 rests for its retry-after; one that got 401 rests for
    GATEWAY_CREDENTIAL_REFUSED_COOLDOWN_SECONDS and is then probed again. A backend that fails
    GATEWAY_CIRCUIT_FAILURES times in a row is taken out for GATEWAY_CIRCUIT_OPEN_SECONDS; after
    that, the next request probes it, and one success closes the circuit.
    """

    def __init__(self) -> None:
        self._credential_rest_until: dict[int, float] = {}
        self._consecutive_failures: dict[int, int] = {}
        self._circuit_open_until: dict[int, float] = {}
        self._turns: dict[int, int] = {}
        self._refusals: dict[int, dict[str, float]] = {}  # credential id -> request id -> when
        self._unwell: set[int] = set()  # credentials reported resting, until they answer again
        self._low_headroom: dict[int, float] = {}  # credential id -> until when the backend says it is near its limit

    def credentials_for(self, upstream: UpstreamInfo, session: str = "") -> tuple[Credential, ...]:
        """The upstream's credentials in the session's own order (each account keeps its own prompt
        cache), or, for a request of no session, starting one further each call to spread the load."""
        credentials = upstream.credentials
        if len(credentials) < 2:
            return credentials
        if session:
            ordered = tuple(sorted(credentials, key=lambda credential: session_rank(session, credential.id)))
        else:
            turn = self._turns.get(upstream.id, 0)
            self._turns[upstream.id] = turn + 1
            start = turn % len(credentials)
            ordered = credentials[start:] + credentials[:start]
        if self._low_headroom:  # those with headroom first, each part in its own order
            now = time.monotonic()
            ordered = tuple(sorted(ordered, key=lambda credential: self._low_headroom.get(credential.id, 0.0) > now))
        return ordered

    def available_at(self, upstream: UpstreamInfo, credential: Credential) -> float:
        """The monotonic time from which this pair may be tried; in the past when it may now."""
        return max(
            self._credential_rest_until.get(credential.id, 0.0),
            self._circuit_open_until.get(upstream.id, 0.0),
        )

    def cool_down(self, credential: Credential, seconds: float, reason: str = "") -> None:
        until = time.monotonic() + seconds
        self._credential_rest_until[credential.id] = until
        metrics.credential_resting(credential.id, until)
        self._unwell.add(credential.id)
        reports.report(credential_subject(credential.id), "resting", reason, metrics.wall_clock(until))

    def note_quota(self, credential: Credential, headers: Mapping[str, str]) -> None:
        """What the backend's rate-limit headers say is left of this credential's own limits.

        At zero it rests until the reset the backend gives, instead of collecting 429s; below
        LOW_HEADROOM of a limit it goes after the others of its backend until that limit resets.
        """
        lowest, reset = 1.0, None
        for kind in QUOTA_KINDS:
            remaining = _whole_number(headers.get(f"anthropic-ratelimit-{kind}-remaining"))
            limit = _whole_number(headers.get(f"anthropic-ratelimit-{kind}-limit"))
            if remaining is not None and limit and remaining / limit < lowest:
                lowest, reset = remaining / limit, headers.get(f"anthropic-ratelimit-{kind}-reset")
        if lowest <= 0:
            self.cool_down(credential, _seconds_until(reset), "the backend reports none of its own limit left")
        if 0 < lowest < LOW_HEADROOM:
            self._low_headroom[credential.id] = time.monotonic() + _seconds_until(reset)
        else:
            self._low_headroom.pop(credential.id, None)

    def record_failure(self, upstream: UpstreamInfo, reason: str = "") -> None:
        failures = self._consecutive_failures.get(upstream.id, 0) + 1
        self._consecutive_failures[upstream.id] = failures
        if failures >= settings.GATEWAY_CIRCUIT_FAILURES:
            until = time.monotonic() + settings.GATEWAY_CIRCUIT_OPEN_SECONDS
            self._circuit_open_until[upstream.id] = until
            metrics.circuit_opened(upstream.name, until)
            why = f"{failures} failures in a row, the last: {reason}" if reason else f"{failures} failures in a row"
            reports.report(upstream_subject(upstream.id), "circuit open", why, metrics.wall_clock(until))

    def record_refusal(self, credential: Credential, request_id: str) -> int:
        """A 401 for this credential: it rests; returns the distinct requests refused within the window."""
        reason = "the backend refused it (401); probed again after the rest"
        self.cool_down(credential, settings.GATEWAY_CREDENTIAL_REFUSED_COOLDOWN_SECONDS, reason)
        now = time.monotonic()
        oldest = now - settings.GATEWAY_CREDENTIAL_REFUSAL_WINDOW_SECONDS
        refusals = {refused: at for refused, at in self._refusals.get(credential.id, {}).items() if at >= oldest}
        refusals[request_id] = now
        self._refusals[credential.id] = refusals
        return len(refusals)

    def forget_refusals(self, credential: Credential) -> None:
        self._refusals.pop(credential.id, None)

    def record_success(self, upstream: UpstreamInfo, credential: Credential) -> None:
        # A credential that works again was refused by a passing fault: its count starts over.
        self.forget_refusals(credential)
        if self._consecutive_failures.pop(upstream.id, None) and self._circuit_open_until.pop(upstream.id, None):
            metrics.circuit_closed(upstream.name)
            reports.report(upstream_subject(upstream.id), "in service", "answered again")
        if credential.id in self._unwell:
            self._unwell.discard(credential.id)
            reports.report(credential_subject(credential.id), "in service", "answered again")

    def reset(self) -> None:
        self._turns.clear()
        self._credential_rest_until.clear()
        self._consecutive_failures.clear()
        self._circuit_open_until.clear()
        self._refusals.clear()
        self._low_headroom.clear()
        self._unwell.clear()


# The backend's own limits the gateway watches, per credential: "tokens" is the most restrictive
# token limit in effect, as Anthropic reports it.
QUOTA_KINDS = ("requests", "tokens")
LOW_HEADROOM = 0.05
LONGEST_QUOTA_REST_SECONDS = 3600.0  # a reset further off than this is not believed


def _whole_number(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _seconds_until(reset: str | None) -> float:
    """Seconds to an RFC 3339 reset time, within reason; the default cooldown if there is none."""
    try:
        moment = datetime.fromisoformat(reset or "")
    except ValueError:
        return settings.GATEWAY_DEFAULT_COOLDOWN_SECONDS
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return min(max(moment.timestamp() - time.time(), 1.0), LONGEST_QUOTA_REST_SECONDS)


health = HealthBoard()
