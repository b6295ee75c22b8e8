"""The bench's markdown report: the figures beside their targets, then how they came about."""

from __future__ import annotations

import math
from collections.abc import Iterable

from bench.profiling import Cost
from bench.results_model import Paired, Repeats, Results, ServerFigures

TARGET_STREAMS = 10_000
SERVER_LABELS = {
    "production": "python -m llmapi.server (uvicorn workers, one SO_REUSEPORT socket each)",
    "uvicorn": "uvicorn --workers (uvloop, httptools, one shared socket)",
    "granian": "granian (asgi, uvloop)",
    "daphne": "Daphne (two processes, one socket)",
}
DASH = "\N{EN DASH}"  # an empty cell, and the range of the repeats


def number(value: float, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def spread(repeats: Repeats, digits: int = 2, signed: bool = False) -> str:
    """The median, and the range of the repeats when there are several."""
    text = number(repeats.median, digits)
    if signed and not math.isnan(repeats.median) and repeats.median >= 0:
        text = "+" + text
    if len(repeats.values) > 1:
        text += f" ({number(repeats.low, digits)}{DASH}{number(repeats.high, digits)})"
    return text


def megabytes(values: list[float]) -> str:
    return ", ".join(f"{value:.1f}" for value in values) + " MB" if values else DASH


def verdict(ok: bool | None) -> str:
    if ok is None:
        return DASH
    return "yes" if ok else "**no**"


def at_most(value: float, limit: float) -> bool | None:
    return None if math.isnan(value) else value <= limit


def at_least(value: float, limit: float) -> bool | None:
    return None if math.isnan(value) else value >= limit


def row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    header = list(header)
    lines = [row(*header), row(*(["---"] * len(header)))]
    lines.extend(row(*cells) for cells in rows)
    return lines


def paired_row(name: str, target: str, paired: Paired, ok: bool | None, unit: str, digits: int = 2) -> list[str]:
    return [
        name,
        target,
        f"{spread(paired.direct, digits)} {unit}",
        f"{spread(paired.gateway, digits)} {unit}",
        f"{spread(paired.added, digits, signed=True)} {unit}",
        verdict(ok),
    ]


def stream_figure(result: dict[str, object]) -> float:
    value = result.get("worst_gap_p99_ms", math.nan)
    return float(value) if isinstance(value, int | float) else math.nan


def other_work(result: dict[str, object]) -> str:
    value = result.get("other_work_cores")
    return f"{value:.2f}" if isinstance(value, float) else "?"


def held_rows(results: Results) -> list[list[str]]:
    held = results.held
    if not held:
        return [["concurrent open streams held", f"≥ {TARGET_STREAMS:,}, no errors", DASH, "not measured", DASH, DASH]]
    streams, completed = int(held["streams"]), int(held["completed"])
    errors, peak = int(held["errors"]), int(held["peak_open"])
    seconds = held.get("stream_seconds", "?")
    text = f"{completed:,} of {streams:,} complete, {errors} errors, {peak:,} open at once"
    ok = None if streams < TARGET_STREAMS else (completed >= TARGET_STREAMS and errors == 0)
    if streams < TARGET_STREAMS:
        text += " (quick run; the full run opens 10,000)"
    gap_direct, gap_gateway = stream_figure(results.gaps_direct), stream_figure(results.gaps_gateway)
    gap_added = gap_gateway - gap_direct
    gap_streams = results.gaps_gateway.get("streams", "?")
    return [
        [
            f"concurrent open streams held ({seconds} s each, paced upstream)",
            f"≥ {TARGET_STREAMS:,}, no errors",
            DASH,
            text,
            DASH,
            verdict(ok),
        ],
        [
            f"worst gap between deltas, p99 over streams, {gap_streams:,} open streams"
            f" (other work on the machine: {other_work(results.gaps_direct)} / {other_work(results.gaps_gateway)}"
            " cores)",
            "≤ direct + 50 ms",
            f"{number(gap_direct, 1)} ms",
            f"{number(gap_gateway, 1)} ms",
            f"{'+' if gap_added >= 0 else ''}{number(gap_added, 1)} ms",
            verdict(at_most(gap_added, 50)),
        ],
    ]


def main_table(results: Results) -> list[str]:
    idle = max(results.idle_rss_mb, default=math.nan)
    rows = [
        [
            "gateway CPU per non-stream request (64 clients)",
            "≤ 0.3 ms",
            DASH,
            f"{spread(results.cpu_ms, 3)} ms",
            DASH,
            verdict(at_most(results.cpu_ms.median, 0.3)),
        ],
        paired_row(
            "latency, non-stream, 1 client, p50",
            "added ≤ 0.5 ms",
            results.latency_p50_ms,
            at_most(results.latency_p50_ms.added.median, 0.5),
            "ms",
            3,
        ),
        paired_row(
            "latency, non-stream, 1 client, p99",
            "added ≤ 5 ms",
            results.latency_p99_ms,
            at_most(results.latency_p99_ms.added.median, 5),
            "ms",
            3,
        ),
        [
            *paired_row(
                "throughput, non-stream, 64 clients",
                "≥ 5,000 req/s",
                results.rps,
                at_least(results.rps.gateway.median, 5000),
                "req/s",
                0,
            )[:4],
            DASH,
            verdict(at_least(results.rps.gateway.median, 5000)),
        ],
        [
            *paired_row(
                "throughput, stream of 20 deltas, 64 clients", "≥ 5,000 req/s", results.stream_rps, None, "req/s", 0
            )[:4],
            DASH,
            verdict(at_least(results.stream_rps.gateway.median, 5000)),
        ],
        [
            "gateway CPU per Claude Code-sized request (about 48 KB, non-stream, 64 clients)",
            "≤ 0.25 ms",
            DASH,
            f"{spread(results.large_cpu_ms, 3)} ms",
            DASH,
            verdict(at_most(results.large_cpu_ms.median, 0.25)),
        ],
        [
            *paired_row(
                "throughput, Claude Code-sized requests, 64 clients (gateway as a share of direct)",
                "≥ 90% of direct",
                results.large_rps,
                None,
                "req/s",
                0,
            )[:4],
            f"{number(results.large_share_of_direct.median * 100, 0)}% of direct",
            verdict(at_least(results.large_share_of_direct.median, 0.9)),
        ],
        paired_row(
            "time to first byte of a stream, 1 client, p50",
            "added ≤ 1 ms",
            results.ttfb_p50_ms,
            at_most(results.ttfb_p50_ms.added.median, 1),
            "ms",
            3,
        ),
        *held_rows(results),
        [
            "memory per worker, idle (RSS)",
            "≤ 100 MB",
            DASH,
            megabytes(results.idle_rss_mb),
            DASH,
            verdict(at_most(idle, 100)),
        ],
        [
            "memory per open stream (RSS growth / open streams)",
            "≤ 30 KB",
            DASH,
            f"{number(results.kb_per_stream, 1)} KB",
            DASH,
            verdict(at_most(results.kb_per_stream, 30)),
        ],
    ]
    return table(["figure", "target", "direct upstream", "gateway", "added", "meets target"], rows)


def gap_figures(result: dict[str, object]) -> str:
    return (
        " / ".join(
            number(float(result[name]), 1) for name in ("worst_gap_p50_ms", "worst_gap_p99_ms", "worst_gap_max_ms")
        )
        + " ms"
    )


def held_cpu_seconds(results: Results) -> str:
    return f"{results.held_cpu.seconds:.0f} s" if results.held_cpu else "?"


def held_cpu_text(results: Results) -> str:
    split = results.held_cpu
    if split is None:
        return DASH
    parts = [f"{name} {cores:.2f}" for name, cores in split.cores.items()]
    parts.append(f"machine busy {split.machine['busy in all']:.2f}")
    parts += [f"other: {name.replace('|', '/')[:40]} {cores:.2f}" for name, cores in split.others.items()]
    return "; ".join(parts)


def more_table(results: Results) -> list[str]:
    held = results.held
    rows = [
        ["gateway CPU per non-stream request, 1 client", f"{spread(results.cpu_ms_one_client, 3)} ms"],
        [
            "non-stream throughput if the bench had both cores to itself (2 cores / CPU per request of the "
            "gateway, nginx, Redis and wrk together; an estimate for a shared machine)",
            f"{spread(results.ceiling_rps, 0)} req/s",
        ],
        ["gateway CPU per stream request (20 deltas), 64 clients", f"{spread(results.stream_cpu_ms, 3)} ms"],
        [
            "Claude Code-sized requests, 64 clients, against a bare Python pass-through (uvicorn + aiohttp, "
            "parsing the body; bench/passthrough.py): its CPU per request / its throughput / the gateway's "
            "throughput as a share of it",
            f"{spread(results.large_passthrough_cpu_ms, 3)} ms / {spread(results.large_passthrough_rps, 0)} req/s / "
            f"{number(results.large_share_of_passthrough.median * 100, 0)}%",
        ],
        [
            "time to first byte, 1 client, p99: direct / gateway",
            f"{spread(results.ttfb_p99_ms.direct, 3)} / {spread(results.ttfb_p99_ms.gateway, 3)} ms",
        ],
        [
            "memory per worker after the load runs (RSS)",
            megabytes(results.after_load_rss_mb),
        ],
    ]
    if held:
        rows += [
            [
                f"memory per worker at {int(held['peak_open']):,} open streams (RSS)",
                megabytes(results.held_peak_rss_mb),
            ],
            [
                f"worst gap between deltas at {int(held['streams']):,} open streams: p50 / p99 / max, gateway (direct)",
                f"{gap_figures(held)}" + (f" ({gap_figures(results.held_direct)})" if results.held_direct else ""),
            ],
            [f"time to open all {int(held['streams']):,} streams", f"{number(float(held['ramp_seconds']), 1)} s"],
            [
                f"CPU in cores while {int(held['streams']):,} streams were open ({held_cpu_seconds(results)})",
                held_cpu_text(results),
            ],
        ]
    if results.errors:
        rows.append(
            [
                "failed requests (wrk: socket errors, timeouts, non-2xx)",
                ", ".join(f"{name}: {count}" for name, count in results.errors.items()),
            ]
        )
    return table(["more figures", "value"], rows)


def server_table(servers: list[ServerFigures]) -> list[str]:
    rows = []
    for figures in servers:
        if figures.failure:
            rows.append([figures.server, f"could not be measured: {figures.failure}", "", "", "", "", "", ""])
            continue
        rows.append(
            [
                SERVER_LABELS.get(figures.server, figures.server),
                f"{spread(figures.latency_p50_ms, 3)} / {spread(figures.latency_p99_ms, 3)} ms",
                spread(figures.rps, 0),
                f"{spread(figures.cpu_ms, 3)} ms",
                spread(figures.stream_rps, 0),
                f"{spread(figures.stream_cpu_ms, 3)} ms",
                megabytes(figures.idle_rss_mb),
                str(figures.errors),
            ]
        )
    header = [
        "server (2 workers)",
        "latency 1 client p50 / p99",
        "non-stream req/s (64)",
        "CPU/request",
        "stream req/s (64)",
        "CPU/stream",
        "idle RSS per worker",
        "failed requests",
    ]
    return table(header, rows)


def cost_rows(costs: list[Cost]) -> list[list[str]]:
    return [
        [cost.name.replace("|", "\\|"), f"{cost.share * 100:.1f}%", f"{cost.us_per_request:.0f} µs"] for cost in costs
    ]


def profile_section(results: Results) -> list[str]:
    profile = results.profile
    if profile is None:
        return [f"Not profiled: {results.profile_error or 'skipped'}."]
    lines = [
        f"py-spy sampled the two uvicorn workers under the 64-client non-stream load ({profile.samples:,} "
        f"on-CPU samples; the gateway spent {profile.cpu_ms_per_request:.3f} ms CPU per request in that run, "
        "profiler included). Flame graph: `bench/results/profile.svg`. A share of the samples times "
        "that CPU per request is the cost per request. Time in C (uvloop, httptools, the kernel's "
        "socket calls) counts toward the Python frame that called it.",
        "",
        "**By component** (the innermost Python frame of each sample):",
        "",
        *table(["component", "share", "per request"], cost_rows(profile.components)),
        "",
        "**The project's own functions**, inclusive of everything they call:",
        "",
        *table(["function", "share", "per request"], cost_rows(profile.own_functions)),
        "",
        "**Calls from the project's code into libraries**, inclusive of everything below them:",
        "",
        *table(["call", "share", "per request"], cost_rows(profile.library_calls)),
        "",
        "**Hottest functions by their own time** (exclusive):",
        "",
        *table(["function", "share", "per request"], cost_rows(profile.self_functions)),
        *stream_profile_lines(results),
    ]
    return lines


def stream_profile_lines(results: Results) -> list[str]:
    profile = results.stream_profile
    if profile is None:
        return []
    return [
        "",
        f"**Streams of 20 deltas**, 64 clients ({profile.samples:,} samples, {profile.cpu_ms_per_request:.3f} ms "
        "CPU per stream; flame graph `bench/results/profile-stream.svg`), by component and the project's "
        "own functions:",
        "",
        *table(["component", "share", "per stream"], cost_rows(profile.components)),
        "",
        *table(["function", "share", "per stream"], cost_rows(profile.own_functions[:10])),
    ]


def cpu_split_section(results: Results) -> list[str]:
    split = results.cpu_split
    if split is None:
        return []
    rows = [["bench processes", name, f"{cores:.2f}"] for name, cores in split.cores.items()]
    rows += [["whole machine", name, f"{cores:.2f}"] for name, cores in split.machine.items()]
    rows += [["other processes", name.replace("|", "\\|"), f"{cores:.2f}"] for name, cores in split.others.items()]
    return [
        f"## Where the machine's CPU went (the last 64-client non-stream gateway run, {split.seconds:.0f} s)",
        "",
        "In cores busy on average (the machine has 2). Time the kernel spends in interrupts (loopback "
        "TCP) is charged to no process; 'other processes' are not the bench's (the machine is shared).",
        "",
        *table(["group", "what", "cores"], rows),
        "",
    ]


def limits_section(results: Results) -> list[str]:
    if not results.limits:
        return []
    rows = [
        f"| {row['connections']:,} | {row['keys']} | {row['allowed']} | {row['admitted']} | {row['over_admitted']} |"
        for row in results.limits
    ]
    return [
        "## Limits under bursts",
        "",
        "Each burst sends its requests at once, each on a connection of its own, on fresh keys allowing "
        "5 requests a minute; 'over-admitted' must be 0 (bench/limits_load.py).",
        "",
        "| at once | keys | allowed | admitted | over-admitted |",
        "|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]


def render(results: Results) -> str:
    conditions = [f"- {name}: {value}" for name, value in results.conditions.items()]
    lines = [
        f"# Gateway benchmark ({results.mode} run, {results.conditions.get('date', '')})",
        "",
        "Medians of the repeats, with their range in brackets; 'added' is the gateway minus the direct "
        "upstream, measured in turns in the same run. How each figure is measured: bench/README.md.",
        "",
        *main_table(results),
        "",
        *more_table(results),
        "",
        *cpu_split_section(results),
        "## ASGI servers",
        "",
        "The same gateway under each server, 2 worker processes each, all started at once and measured "
        "in turns (so that the shared machine's changing load falls on each alike); the latency is "
        "the gateway's own, not the added (the direct upstream's is in the first table).",
        "",
        *server_table(results.servers),
        "",
        "## Profile: the top costs per request",
        "",
        *profile_section(results),
        "",
        *limits_section(results),
        "## Conditions",
        "",
        *conditions,
    ]
    if results.notes:
        lines += ["", "## Notes", "", *[f"- {note}" for note in results.notes]]
    return "\n".join(lines) + "\n"
