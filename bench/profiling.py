"""Where the gateway's CPU goes under load: py-spy samples of its workers, summed per request.

py-spy samples the worker processes (on-CPU samples only) while wrk loads them. The flame graph
goes to bench/results/profile.svg; the same kind of samples in collapsed form are summed here:
each function's share of all samples, times the CPU the gateway spent per request in that run,
is the function's cost per request.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.servers import PROJECT_DIR, UV_RUN

FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
OWN_CODE = ("gateway/", "keys/", "llmapi/", "plans/", "accounts/")

# Components by where the sampled (innermost Python) frame is; the first match wins.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gateway code (gateway/, keys/, llmapi/)", OWN_CODE),
    ("ASGI server (uvicorn/granian/daphne, httptools)", ("uvicorn/", "granian/", "daphne/", "twisted/", "httptools/")),
    ("aiohttp client (upstream HTTP)", ("aiohttp/", "multidict/", "yarl/", "aiohappyeyeballs/")),
    ("redis client (limiter)", ("redis/",)),
    ("asyncio and the event loop (uvloop, in C)", ("asyncio/", "uvloop/", "<frozen", "selectors.py")),
    ("Django (settings, ORM)", ("django/", "asgiref/")),
)


def py_spy_command(pid: int, seconds: float, output: Path, fmt: str, rate: int) -> list[str]:
    return [
        *UV_RUN,
        "--with",
        "py-spy",
        "py-spy",
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--nonblocking",
        "--rate",
        str(rate),
        "--duration",
        str(round(seconds)),
        "--format",
        fmt,
        "--output",
        str(output),
    ]


def record_under_load(
    pid: int, seconds: float, output: Path, fmt: str, load: Callable[[], object], rate: int = 250
) -> object:
    """Sample `pid` and its children for `seconds` while `load()` runs; returns what load returned."""
    spy = subprocess.Popen(
        py_spy_command(pid, seconds, output, fmt, rate),
        cwd=PROJECT_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        result = load()
    finally:
        _, stderr = spy.communicate(timeout=seconds + 60)
    if spy.returncode != 0 or not output.exists():
        raise RuntimeError(f"py-spy failed ({spy.returncode}): {stderr.decode(errors='replace')[-2000:]}")
    return result


@dataclass(frozen=True, slots=True)
class Cost:
    name: str
    share: float  # of all samples
    us_per_request: float


@dataclass(frozen=True, slots=True)
class Profile:
    samples: int
    cpu_ms_per_request: float
    components: list[Cost]  # by the innermost frame's package (self time)
    own_functions: list[Cost]  # the project's functions, inclusive of what they call
    library_calls: list[Cost]  # calls from the project's code into libraries, inclusive
    self_functions: list[Cost]  # any function, exclusive (its own frame only)


def parse_frame(frame: str) -> tuple[str, str] | None:
    """(function, file) of one collapsed-stack frame; None for py-spy's process/thread labels."""
    match = FRAME.match(frame)
    if match is None:
        return None
    return match["function"], match["file"]


def short_file(path: str) -> str:
    for marker in ("site-packages/", "lib/python3.11/", str(PROJECT_DIR) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def is_own(path: str) -> bool:
    return "site-packages" not in path and short_file(path).startswith(OWN_CODE)


def component_of(path: str) -> str:
    for name, markers in COMPONENTS:
        if name.startswith("gateway code") and not is_own(path):
            continue
        if any(marker in path for marker in markers):
            return name
    return "other (stdlib, orjson, ...)"


def library_calls(frames: list[tuple[str, str]]) -> set[str]:
    """Each place where the project's code calls into a library, as 'caller -> callee (file)'."""
    calls = set()
    for (caller, caller_file), (callee, callee_file) in itertools.pairwise(frames):
        if is_own(caller_file) and not is_own(callee_file):
            calls.add(f"{caller} → {callee} ({short_file(callee_file)})")
    return calls


def summarize(raw: str, cpu_ms_per_request: float, top: int = 15) -> Profile:
    total = 0
    components: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    exclusive: Counter[str] = Counter()
    boundary: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [parsed for frame in stack.split(";") if (parsed := parse_frame(frame)) is not None]
        if not frames:
            continue
        total += count
        function, path = frames[-1]
        components[component_of(path)] += count
        exclusive[f"{function} ({short_file(path)})"] += count
        for name in {f"{name} ({short_file(file)})" for name, file in frames if is_own(file)}:
            inclusive[name] += count
        for name in library_calls(frames):
            boundary[name] += count

    def costs(counter: Counter[str], limit: int | None) -> list[Cost]:
        return [
            Cost(name, count / total, count / total * cpu_ms_per_request * 1000)
            for name, count in counter.most_common(limit)
        ]

    return Profile(
        samples=total,
        cpu_ms_per_request=cpu_ms_per_request,
        components=costs(components, None) if total else [],
        own_functions=costs(inclusive, top + 5) if total else [],  # the first few wrap the whole request
        library_calls=costs(boundary, top) if total else [],
        self_functions=costs(exclusive, top) if total else [],
    )
