"""What a bench run found, figure by figure, for the report."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from bench.measure import CpuSplit
from bench.profiling import Profile
from bench.stats import median


@dataclass
class Repeats:
    """One figure measured several times; the report shows the median and the spread."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return median(self.values)

    @property
    def low(self) -> float:
        clean = [value for value in self.values if not math.isnan(value)]
        return min(clean, default=math.nan)

    @property
    def high(self) -> float:
        clean = [value for value in self.values if not math.isnan(value)]
        return max(clean, default=math.nan)


@dataclass
class Paired:
    """A figure of the direct upstream and of the gateway, measured in turns in one run."""

    direct: Repeats = field(default_factory=Repeats)
    gateway: Repeats = field(default_factory=Repeats)
    added: Repeats = field(default_factory=Repeats)  # gateway minus direct, turn by turn

    def add(self, direct: float, gateway: float) -> None:
        self.direct.add(direct)
        self.gateway.add(gateway)
        self.added.add(gateway - direct)


@dataclass
class ServerFigures:
    """The ASGI server comparison: the same figures under each server."""

    server: str
    latency_p50_ms: Repeats = field(default_factory=Repeats)
    latency_p99_ms: Repeats = field(default_factory=Repeats)
    rps: Repeats = field(default_factory=Repeats)
    cpu_ms: Repeats = field(default_factory=Repeats)
    stream_rps: Repeats = field(default_factory=Repeats)
    stream_cpu_ms: Repeats = field(default_factory=Repeats)
    idle_rss_mb: list[float] = field(default_factory=list)
    errors: int = 0
    failure: str = ""  # why the server could not be measured, if it could not


@dataclass
class Results:
    mode: str
    conditions: dict[str, str]
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    latency_p50_ms: Paired = field(default_factory=Paired)
    latency_p99_ms: Paired = field(default_factory=Paired)
    cpu_ms_one_client: Repeats = field(default_factory=Repeats)
    rps: Paired = field(default_factory=Paired)
    cpu_ms: Repeats = field(default_factory=Repeats)
    ceiling_rps: Repeats = field(default_factory=Repeats)  # if the bench had the machine to itself
    stream_rps: Paired = field(default_factory=Paired)
    stream_cpu_ms: Repeats = field(default_factory=Repeats)
    large_rps: Paired = field(default_factory=Paired)  # Claude Code-sized requests (bench/bodies.py)
    large_cpu_ms: Repeats = field(default_factory=Repeats)
    large_share_of_direct: Repeats = field(default_factory=Repeats)  # gateway / direct throughput, turn by turn
    large_passthrough_rps: Repeats = field(default_factory=Repeats)  # the bare pass-through (bench/passthrough.py)
    large_passthrough_cpu_ms: Repeats = field(default_factory=Repeats)
    large_share_of_passthrough: Repeats = field(default_factory=Repeats)  # gateway / pass-through, turn by turn
    ttfb_p50_ms: Paired = field(default_factory=Paired)
    ttfb_p99_ms: Paired = field(default_factory=Paired)
    errors: dict[str, int] = field(default_factory=dict)  # failed requests per measurement
    held: dict[str, object] = field(default_factory=dict)
    held_direct: dict[str, object] = field(default_factory=dict)  # as many streams, direct
    gaps_direct: dict[str, object] = field(default_factory=dict)
    gaps_gateway: dict[str, object] = field(default_factory=dict)
    idle_rss_mb: list[float] = field(default_factory=list)  # per worker, fresh and warmed up
    after_load_rss_mb: list[float] = field(default_factory=list)
    held_peak_rss_mb: list[float] = field(default_factory=list)
    kb_per_stream: float = math.nan
    cpu_split: CpuSplit | None = None
    held_cpu: CpuSplit | None = None  # during the many open streams
    profile: Profile | None = None  # non-stream requests
    stream_profile: Profile | None = None  # streams of 20 deltas
    profile_error: str = ""
    servers: list[ServerFigures] = field(default_factory=list)
    limits: list[dict[str, object]] = field(default_factory=list)  # one row per burst (bench/limits_load.py)
    notes: list[str] = field(default_factory=list)

    def count_errors(self, what: str, errors: int) -> None:
        self.errors[what] = self.errors.get(what, 0) + errors
