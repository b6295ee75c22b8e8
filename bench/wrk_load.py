"""Load from wrk (Debian's package) with bench/wrk_post.lua: request rate and latency percentiles."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import orjson

SCRIPT = Path(__file__).with_name("wrk_post.lua")
MARKER = "BENCH_JSON "


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int  # socket errors, timeouts and answers other than 2xx/3xx
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    return found


def parse_output(stdout: str) -> WrkResult:
    line = next((line for line in stdout.splitlines() if line.startswith(MARKER)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no figures:\n{stdout}")
    data = orjson.loads(line[len(MARKER) :])
    latency = data["latency_us"]
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=sum(data["errors"].values()),
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
    )


def run_wrk(
    base_url: str,
    *,
    path: str,
    body_file: Path,
    keys: list[str],
    connections: int,
    seconds: float,
    threads: int | None = None,
) -> WrkResult:
    """Keep `connections` requests in flight for `seconds` against base_url + path."""
    threads = threads or min(connections, 2)
    env = {
        **os.environ,
        "BENCH_PATH": path,
        "BENCH_BODY_FILE": str(body_file),
        "BENCH_API_KEYS": ",".join(keys),
    }
    command = [
        wrk_binary(),
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=10s",
        f"--script={SCRIPT}",
        base_url + path,
    ]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr or completed.stdout}")
    return parse_output(completed.stdout)
