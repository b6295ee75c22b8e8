"""`make bench`: the gateway measured against the direct upstream, in one run, on this machine.

    uv run python -m bench.run            # the full run (10,000 open streams; about 10 minutes)
    uv run python -m bench.run --quick    # short runs and 1,000 streams (about 4 minutes)

It starts everything it measures and stops it again: nginx as the fixed upstream, the paced
upstream, its own PostgreSQL database, and the gateway under the production launcher (then it,
uvicorn's own workers, granian and Daphne for the server comparison), all on 127.0.0.1. The
report goes to bench/results/<date>-<mode>.md and bench/results/latest.md. bench/README.md
explains each figure.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import math
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import orjson
import redis

from bench import bodies
from bench.measure import (
    GATEWAY_ALL,
    LOAD_GENERATOR,
    MESSAGES,
    STREAM,
    CpuSplit,
    MemorySampler,
    OtherWork,
    Target,
    cpu_split,
    first_byte,
    load,
    open_streams,
    redis_server_pids,
)
from bench.netutil import free_port, raise_open_file_limit, stop_group, wait_for_port
from bench.profiling import record_under_load, summarize
from bench.report import render
from bench.results_model import Results, ServerFigures
from bench.servers import GATEWAY_SERVERS, PROJECT_DIR, UV, UV_RUN, GatewayServer
from bench.upstream_nginx import NginxUpstream

PHASES = ("streams", "requests", "servers", "limits")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
MB = 1024 * 1024


@dataclass(frozen=True)
class Options:
    mode: str
    seconds: float  # each wrk run
    repeats: int  # turns of direct and gateway per figure
    server_repeats: int  # turns per figure in the server comparison
    ttfb_count: int  # streams per first-byte measurement
    held_streams: int
    gap_streams: int
    stream_deltas: int  # deltas per paced stream, one per interval
    interval_ms: float
    open_rate: float  # streams opened per second
    profile_seconds: float
    servers: tuple[str, ...] = GATEWAY_SERVERS
    phases: tuple[str, ...] = PHASES
    profile: bool = True
    keys: int = 8
    limit_connections: tuple[int, ...] = (64, 256, 1024)  # bursts of the limits phase


QUICK = Options(
    mode="quick",
    seconds=5,
    repeats=3,
    server_repeats=2,
    ttfb_count=200,
    held_streams=1000,
    gap_streams=1000,
    stream_deltas=10,
    interval_ms=1000,
    open_rate=500,
    profile_seconds=5,
)
FULL = Options(
    mode="full",
    seconds=10,
    repeats=3,
    server_repeats=2,
    ttfb_count=500,
    held_streams=10_000,
    gap_streams=1000,
    stream_deltas=30,
    interval_ms=1000,
    open_rate=500,
    profile_seconds=10,
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- preparation


def ensure_debian_package(command: str, package: str) -> None:
    if shutil.which(command) or Path(f"/usr/sbin/{command}").exists():
        return
    if os.geteuid() != 0:
        raise SystemExit(f"{command} is missing: sudo apt-get install -y {package}")
    log(f"installing {package} (before any measurement)")
    subprocess.run(["apt-get", "install", "-y", "-q", package], check=True)


def prepare_tools(options: Options) -> None:
    """Install what the run needs now, so that nothing is fetched while it measures."""
    ensure_debian_package("nginx", "nginx-light")
    ensure_debian_package("wrk", "wrk")
    extras = (["granian"] if "granian" in options.servers else []) + (["py-spy"] if options.profile else [])
    for extra in extras:
        subprocess.run(
            [UV, "run", "--with", extra, extra, "--version"], cwd=PROJECT_DIR, check=True, capture_output=True
        )


def version_of(command: list[str]) -> str:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (completed.stdout or completed.stderr).strip().splitlines()
    return text[0] if text else "?"


def conditions(options: Options, open_files: int, redis_url: str) -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    commit = version_of(["git", "-C", str(PROJECT_DIR), "rev-parse", "--short", "HEAD"])
    dirty = version_of(["git", "-C", str(PROJECT_DIR), "status", "--porcelain", "--untracked-files=no"])
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit + (" (with uncommitted changes)" if dirty not in {"", "?"} else ""),
        "machine": f"{os.cpu_count()} cores, {cpu}; load average at start {os.getloadavg()[0]:.2f} "
        "(the machine is shared: other work shows in the spread)",
        "software": f"Python {platform.python_version()}; {version_of(['nginx', '-v'])}; "
        f"{version_of(['wrk', '--version'])}; {version_of(['redis-server', '--version'])}",
        "runs": f"{options.repeats} turns of direct and gateway per figure, {options.seconds:g} s each; "
        f"first byte over {options.ttfb_count} streams a turn; server comparison "
        f"{options.server_repeats} turn(s) per figure",
        "streams": f"paced upstream, {options.stream_deltas} deltas {options.interval_ms:g} ms apart, "
        f"opened at {options.open_rate:g} a second",
        "gateway": "2 worker processes, DEBUG=0, PostgreSQL (own database), Redis limiter at "
        f"{redis_url} with its own key prefix, usage emitted, open-file limit {open_files:,} per process",
    }


# --------------------------------------------------------------------------- the rig


@dataclass
class Rig:
    """Everything the measurements share: the stand-ins, the keys, the bodies, the gateway's env."""

    tmp: Path
    nginx: NginxUpstream
    paced_url: str
    keys: list[str]
    env: dict[str, str]
    body_json: Path
    body_stream: Path
    body_large: Path  # a Claude Code-sized non-stream request
    paced_pids: list[int]

    def gateway(self, kind: str = "production") -> GatewayServer:
        return GatewayServer(kind, free_port(), self.env, self.tmp).start()

    def passthrough(self) -> GatewayServer:
        """The bare Python pass-through to the same upstream (bench/passthrough.py)."""
        env = {**self.env, "PASSTHROUGH_UPSTREAM": self.nginx.base_url}
        return GatewayServer("passthrough", free_port(), env, self.tmp).start()

    def clean_redis(self) -> None:
        """Drop the run's limiter windows and usage stream (the usage grows with every request)."""
        delete_redis_keys(self.env["REDIS_URL"], self.env["REDIS_KEY_PREFIX"])

    def direct(self) -> Target:
        return Target("direct", self.nginx.base_url, [])

    def paced_direct(self) -> Target:
        return Target("direct", self.paced_url, [])


def gateway_env(database_url: str, redis_url: str, run_id: str) -> dict[str, str]:
    secret = secrets.token_urlsafe(32)
    return {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": secret,
        "API_KEY_HASH_SECRET": secret,
        "UPSTREAM_SECRET_KEYS": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "WEB_BACKLOG": "16384",
        "WEB_LIMIT_CONCURRENCY": "100000",  # the bench holds 10,000 streams and more at once
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": run_id,
        "LOG_LEVEL": "WARNING",
        "METRICS_TOKEN": secrets.token_urlsafe(16),  # metrics on, as production runs (request lines are on too)
    }


def provision(env: dict[str, str], nginx_url: str, paced_url: str, keys: int) -> list[str]:
    # No REDIS_URL: the set-up publishes no invalidations to other gateways sharing the Redis.
    setup_env = {name: value for name, value in env.items() if name != "REDIS_URL"}
    command = [
        *UV_RUN,
        "python",
        "-m",
        "bench.provision",
        "--nginx-url",
        nginx_url,
        "--paced-url",
        paced_url,
        "--keys",
        str(keys),
    ]
    completed = subprocess.run(command, cwd=PROJECT_DIR, env=setup_env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"provisioning failed:\n{completed.stderr[-4000:]}")
    return orjson.loads(completed.stdout.strip().splitlines()[-1])["keys"]


def delete_redis_keys(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        for batch in iter(lambda: list(_take(client.scan_iter(match=f"{prefix}:*", count=1000), 500)), []):
            client.delete(*batch)
    finally:
        client.close()


def _take(iterator: Iterator[bytes], size: int) -> Iterator[bytes]:
    for _, item in zip(range(size), iterator, strict=False):
        yield item


class UsageDrainStandIn:
    """Empties the run's usage streams twice a second, as the Celery drain does in production. The
    drain's database work is not the gateway's and is measured apart (bench/drain_rate.py); left
    full, the streams would reach their ceiling and the gateway would write usage to PostgreSQL
    itself, which is its fallback for a drain that is down, not its normal work."""

    INTERVAL_SECONDS = 0.5

    def __init__(self, redis_url: str, prefix: str) -> None:
        shards = int(os.environ.get("REDIS_SHARDS", "1"))
        self._streams = [f"{prefix}:{{{shard}}}:usage" for shard in range(shards)]
        self._client = redis.Redis.from_url(redis_url)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="usage-drain-stand-in", daemon=True)

    def start(self) -> UsageDrainStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._client.close()

    def _run(self) -> None:
        while not self._stop.wait(self.INTERVAL_SECONDS):
            self._client.delete(*self._streams)


@contextlib.contextmanager
def rig(options: Options, database_url: str, redis_url: str) -> Iterator[Rig]:
    run_id = f"bench-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}-{os.getpid()}"
    env = gateway_env(database_url, redis_url, run_id)
    with tempfile.TemporaryDirectory(prefix="llmapi-bench-") as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        nginx = NginxUpstream(tmp, free_port()).start()
        stack.callback(nginx.stop)
        paced_port = free_port()
        paced = subprocess.Popen(
            [*UV_RUN, "python", "-m", "bench.paced_upstream", "--port", str(paced_port)],
            cwd=PROJECT_DIR,
            start_new_session=True,
        )
        stack.callback(stop_group, paced)
        wait_for_port(paced_port, paced)
        paced_url = f"http://127.0.0.1:{paced_port}"
        log(f"nginx on {nginx.base_url}, paced upstream on {paced_url}; provisioning {database_url}")
        keys = provision(env, nginx.base_url, paced_url, options.keys)
        stack.callback(delete_redis_keys, redis_url, run_id)
        stack.callback(UsageDrainStandIn(redis_url, run_id).start().stop)
        body_json, body_stream = tmp / "message.json", tmp / "stream.json"
        body_json.write_bytes(bodies.request_body(bodies.FIXED_MODEL, stream=False))
        body_stream.write_bytes(bodies.request_body(bodies.FIXED_MODEL, stream=True))
        body_large = tmp / "large.json"
        body_large.write_bytes(bodies.claude_code_request_body(bodies.FIXED_MODEL, stream=False))
        yield Rig(tmp, nginx, paced_url, keys, env, body_json, body_stream, body_large, [paced.pid])


# --------------------------------------------------------------------------- phases


def warm_up(rig: Rig, target: Target) -> None:
    """Fill each worker's caches and pools, so that no figure includes a first request."""
    for path, body in ((MESSAGES, rig.body_json), (STREAM, rig.body_stream)):
        result = load(target, path=path, body_file=body, connections=16, seconds=2)
        if result.wrk.errors:
            raise RuntimeError(f"warm-up of {target.name} failed: {result.wrk.errors} of {result.wrk.requests}")
    first_byte(target, count=20)


def settle_rss(server: GatewayServer) -> list[float]:
    time.sleep(2)
    return [rss / MB for rss in server.worker_rss_bytes()]


def paced_streams(rig: Rig, options: Options, target: Target, count: int) -> tuple[dict[str, object], object]:
    return open_streams(
        target,
        streams=count,
        deltas=options.stream_deltas,
        interval_ms=options.interval_ms,
        rate=options.open_rate,
        live_roots=[*rig.paced_pids, *rig.nginx.pids()],
    )


def streams_phase(rig: Rig, options: Options, results: Results) -> None:
    """A fresh gateway: idle memory, then many open streams (held, memory, gaps), then the gap baseline."""
    server = rig.gateway()
    try:
        target = Target("gateway", server.base_url, rig.keys, server)
        warm_up(rig, target)
        results.idle_rss_mb = settle_rss(server)
        log(f"idle RSS per worker: {results.idle_rss_mb}; opening {options.held_streams:,} streams")
        parts = {
            GATEWAY_ALL: server.root_pids,
            **{f"gateway worker {n + 1}": [info.pid] for n, info in enumerate(server.worker_processes())},
            "paced upstream": rig.paced_pids,
        }
        (held, sampler), results.held_cpu = cpu_split(
            partial(paced_streams, rig, options, target, options.held_streams), parts
        )
        held["stream_seconds"] = f"{options.stream_deltas * options.interval_ms / 1000:g}"
        results.held = held
        if isinstance(sampler, MemorySampler) and held["peak_open"]:
            results.held_peak_rss_mb = [rss / MB for rss in sampler.peak_per_worker]
            growth = sampler.peak_total - sum(results.idle_rss_mb) * MB
            results.kb_per_stream = growth / int(held["peak_open"]) / 1024
        log(f"held: {held}")
        if options.gap_streams == options.held_streams:
            results.gaps_gateway = held
            results.held_direct = {}
        else:
            server.stop()
            server = rig.gateway()  # the gap figure on a gateway that has not held 10,000 streams
            target = Target("gateway", server.base_url, rig.keys, server)
            warm_up(rig, target)
            results.gaps_gateway = paced_streams(rig, options, target, options.gap_streams)[0]
        log(f"gaps through the gateway: {results.gaps_gateway}")
    finally:
        server.stop()
    results.gaps_direct = paced_streams(rig, options, rig.paced_direct(), options.gap_streams)[0]
    log(f"gaps direct: {results.gaps_direct}")
    if options.held_streams != options.gap_streams:  # the baseline of the gaps at many streams
        results.held_direct = paced_streams(rig, options, rig.paced_direct(), options.held_streams)[0]
        log(f"{options.held_streams:,} streams direct: {results.held_direct}")


def request_phase(rig: Rig, options: Options, results: Results) -> None:
    """A fresh gateway under the production launcher: first byte, latency, throughput, CPU, profile."""
    server = rig.gateway()
    passthrough_server = rig.passthrough()
    try:
        gateway = Target("gateway", server.base_url, rig.keys, server)
        passthrough = Target("pass-through", passthrough_server.base_url, [], passthrough_server)
        direct = rig.direct()
        warm_up(rig, gateway)
        for turn in range(options.repeats):
            log(f"turn {turn + 1}/{options.repeats}: first byte, latency, throughput")
            ttfb_direct = first_byte(rig.paced_direct(), count=options.ttfb_count)
            ttfb_gateway = first_byte(gateway, count=options.ttfb_count)
            results.ttfb_p50_ms.add(ttfb_direct["p50_ms"], ttfb_gateway["p50_ms"])
            results.ttfb_p99_ms.add(ttfb_direct["p99_ms"], ttfb_gateway["p99_ms"])
            one_direct = load(direct, path=MESSAGES, body_file=rig.body_json, connections=1, seconds=options.seconds)
            one = load(gateway, path=MESSAGES, body_file=rig.body_json, connections=1, seconds=options.seconds)
            results.latency_p50_ms.add(one_direct.wrk.p50_ms, one.wrk.p50_ms)
            results.latency_p99_ms.add(one_direct.wrk.p99_ms, one.wrk.p99_ms)
            results.cpu_ms_one_client.add(one.cpu_ms_per_request)
            results.count_errors("latency, 1 client", one.wrk.errors)
            many_direct = load(direct, path=MESSAGES, body_file=rig.body_json, connections=64, seconds=options.seconds)
            parts = {
                GATEWAY_ALL: server.root_pids,
                **{f"gateway worker {n + 1}": [info.pid] for n, info in enumerate(server.worker_processes())},
                "nginx (upstream)": rig.nginx.pids(),
                "redis-server": redis_server_pids(),
            }
            run = partial(
                load, gateway, path=MESSAGES, body_file=rig.body_json, connections=64, seconds=options.seconds
            )
            many, results.cpu_split = cpu_split(run, parts)
            results.ceiling_rps.add(cpu_ceiling(results.cpu_split, many.wrk.requests))
            results.rps.add(many_direct.wrk.rate, many.wrk.rate)
            results.cpu_ms.add(many.cpu_ms_per_request)
            results.count_errors("non-stream, 64 clients", many.wrk.errors)
            stream_direct = load(
                direct, path=STREAM, body_file=rig.body_stream, connections=64, seconds=options.seconds
            )
            stream = load(gateway, path=STREAM, body_file=rig.body_stream, connections=64, seconds=options.seconds)
            results.stream_rps.add(stream_direct.wrk.rate, stream.wrk.rate)
            results.stream_cpu_ms.add(stream.cpu_ms_per_request)
            results.count_errors("stream, 64 clients", stream.wrk.errors)
            large_requests(rig, options, results, direct=direct, gateway=gateway, passthrough=passthrough)
        if options.profile:
            profile(rig, options, results, gateway)
        results.after_load_rss_mb = settle_rss(server)
    finally:
        passthrough_server.stop()
        server.stop()


def large_requests(
    rig: Rig, options: Options, results: Results, *, direct: Target, gateway: Target, passthrough: Target
) -> None:
    """Claude Code-sized requests (about 48 KB), direct, through the bare pass-through and through
    the gateway, 64 clients each."""
    run = partial(load, path=MESSAGES, body_file=rig.body_large, connections=64, seconds=options.seconds)
    large_direct, large_passthrough, large = run(direct), run(passthrough), run(gateway)
    results.large_rps.add(large_direct.wrk.rate, large.wrk.rate)
    results.large_share_of_direct.add(share(large.wrk.rate, large_direct.wrk.rate))
    results.large_cpu_ms.add(large.cpu_ms_per_request)
    results.large_passthrough_rps.add(large_passthrough.wrk.rate)
    results.large_passthrough_cpu_ms.add(large_passthrough.cpu_ms_per_request)
    results.large_share_of_passthrough.add(share(large.wrk.rate, large_passthrough.wrk.rate))
    results.count_errors("48 KB non-stream, 64 clients", large.wrk.errors)
    results.count_errors("48 KB non-stream, 64 clients, pass-through", large_passthrough.wrk.errors)


def share(part: float, whole: float) -> float:
    return part / whole if whole else math.nan


def cpu_ceiling(split: CpuSplit, requests: int) -> float:
    """Requests a second if the bench's processes had every core to themselves (an estimate)."""
    names = (GATEWAY_ALL, "nginx (upstream)", "redis-server", LOAD_GENERATOR)
    cpu_seconds = sum(split.cores[name] for name in names) * split.seconds
    return (os.cpu_count() or 1) * requests / cpu_seconds if cpu_seconds else float("nan")


def profile(rig: Rig, options: Options, results: Results, gateway: Target) -> None:
    """py-spy on the workers: non-stream requests (profile.svg), then streams (profile-stream.svg)."""
    assert gateway.server is not None
    workers = gateway.server.worker_processes()
    parent = workers[0].ppid if workers else gateway.server.root_pids[0]
    RESULTS_DIR.mkdir(exist_ok=True)
    for name, path, body in (("profile", MESSAGES, rig.body_json), ("profile-stream", STREAM, rig.body_stream)):
        under_load = partial(load, gateway, path=path, body_file=body, connections=64, seconds=options.profile_seconds)
        log(f"profiling with py-spy: {name}")
        stacks = RESULTS_DIR / f"{name}-stacks.txt"  # collapsed stacks, for a closer look
        try:
            record_under_load(parent, options.profile_seconds, RESULTS_DIR / f"{name}.svg", "flamegraph", under_load)
            loaded = record_under_load(parent, options.profile_seconds, stacks, "raw", under_load)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            results.profile_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log(f"profile failed: {exc}")
            return
        summary = summarize(stacks.read_text(), loaded.cpu_ms_per_request)
        if path == MESSAGES:
            results.profile = summary
        else:
            results.stream_profile = summary


def start_servers(rig: Rig, kinds: tuple[str, ...]) -> tuple[dict[str, GatewayServer], list[ServerFigures]]:
    """Every server at once, each warmed up; those that fail to start are reported as such."""
    servers: dict[str, GatewayServer] = {}
    figures = []
    for kind in kinds:
        figure = ServerFigures(kind)
        figures.append(figure)
        try:
            server = rig.gateway(kind)
        except (RuntimeError, TimeoutError) as exc:
            figure.failure = str(exc).splitlines()[0]
            continue
        servers[kind] = server
        try:
            warm_up(rig, Target(kind, server.base_url, rig.keys, server))
            figure.idle_rss_mb = settle_rss(server)
        except RuntimeError as exc:
            figure.failure = str(exc).splitlines()[0]
    return servers, figures


def measure_server(rig: Rig, options: Options, server: GatewayServer, figure: ServerFigures) -> None:
    gateway = Target(server.kind, server.base_url, rig.keys, server)
    one = load(gateway, path=MESSAGES, body_file=rig.body_json, connections=1, seconds=options.seconds)
    many = load(gateway, path=MESSAGES, body_file=rig.body_json, connections=64, seconds=options.seconds)
    stream = load(gateway, path=STREAM, body_file=rig.body_stream, connections=64, seconds=options.seconds)
    figure.latency_p50_ms.add(one.wrk.p50_ms)
    figure.latency_p99_ms.add(one.wrk.p99_ms)
    figure.rps.add(many.wrk.rate)
    figure.cpu_ms.add(many.cpu_ms_per_request)
    figure.stream_rps.add(stream.wrk.rate)
    figure.stream_cpu_ms.add(stream.cpu_ms_per_request)
    figure.errors += one.wrk.errors + many.wrk.errors + stream.wrk.errors


def server_phase(rig: Rig, options: Options, results: Results) -> None:
    """The gateway under each ASGI server, all started at once and measured in turns.

    Turns spread the shared machine's changing load evenly over the servers; a server that is
    not being measured sits idle and costs next to nothing.
    """
    servers, figures = start_servers(rig, options.servers)
    results.servers = figures
    try:
        for turn in range(options.server_repeats):
            for figure in figures:
                if figure.failure:
                    continue
                log(f"server comparison, turn {turn + 1}/{options.server_repeats}: {figure.server}")
                try:
                    measure_server(rig, options, servers[figure.server], figure)
                except RuntimeError as exc:
                    figure.failure = str(exc).splitlines()[0]
            rig.clean_redis()
    finally:
        for server in servers.values():
            server.stop()


def limits_phase(rig: Rig, options: Options, results: Results) -> None:
    """Over-admissions of the limiter under bursts on one key and on many (bench/limits_load.py)."""
    server = rig.gateway()
    try:
        command = [
            *UV_RUN,
            "python",
            "-m",
            "bench.limits_load",
            "--base-url",
            server.base_url,
            "--body",
            str(rig.body_json),
            "--connections",
            ",".join(str(count) for count in options.limit_connections),
        ]
        log(f"limits: bursts of {options.limit_connections} requests at once, on one key and on many")
        completed = subprocess.run(command, cwd=PROJECT_DIR, env=rig.env, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"the limits phase failed:\n{completed.stderr[-4000:]}")
        results.limits = [orjson.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
        log(f"limits: {results.limits}")
    finally:
        server.stop()


# --------------------------------------------------------------------------- the report


def write_report(results: Results, *, complete: bool) -> Path:
    """The dated report, and latest.md too when every phase ran."""
    RESULTS_DIR.mkdir(exist_ok=True)
    text = render(results)
    stamp = results.started.strftime("%Y-%m-%d-%H%M")
    path = RESULTS_DIR / f"{stamp}-{results.mode}{'' if complete else '-partial'}.md"
    path.write_text(text)
    if complete:
        (RESULTS_DIR / "latest.md").write_text(text)
    return path


def parse_args(argv: list[str] | None = None) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs and 1,000 streams")
    parser.add_argument(
        "--servers", default=",".join(GATEWAY_SERVERS), help="comma-separated, from " + ",".join(GATEWAY_SERVERS)
    )
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated, from " + ",".join(PHASES))
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--seconds", type=float, help="length of each wrk run")
    parser.add_argument("--repeats", type=int, help="turns of direct and gateway per figure")
    parser.add_argument("--streams", type=int, help="streams held open at once")
    parser.add_argument("--limit-connections", help="comma-separated burst sizes of the limits phase [64,256,1024]")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/llmapi_bench"),
        help="the bench's own database; dropped and created anew",
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args(argv)
    options = QUICK if args.quick else FULL
    servers = tuple(name.strip() for name in args.servers.split(",") if name.strip())
    phases = tuple(name.strip() for name in args.phases.split(",") if name.strip())
    options = replace(options, servers=servers, phases=phases, profile=not args.no_profile)
    if args.seconds:
        options = replace(options, seconds=args.seconds)
    if args.repeats:
        options = replace(options, repeats=args.repeats)
    if args.streams:
        options = replace(options, held_streams=args.streams)
    if args.limit_connections:
        counts = tuple(int(count) for count in args.limit_connections.split(","))
        options = replace(options, limit_connections=counts)
    return options, args


def main(argv: list[str] | None = None) -> None:
    options, args = parse_args(argv)
    started = time.monotonic()
    prepare_tools(options)
    open_files = raise_open_file_limit()
    results = Results(mode=options.mode, conditions=conditions(options, open_files, args.redis_url))
    # The stream client and the paced upstream hold one descriptor per stream; each of the two
    # gateway workers two per stream it relays, about half of them.
    if open_files < options.held_streams + 1000:
        results.notes.append(f"open-file limit is {open_files:,}: too low for {options.held_streams:,} streams")
    other_work = OtherWork([])
    with rig(options, args.database_url, args.redis_url) as bench_rig:
        if "streams" in options.phases:
            streams_phase(bench_rig, options, results)
            bench_rig.clean_redis()
        if "requests" in options.phases:
            request_phase(bench_rig, options, results)
            bench_rig.clean_redis()
        if "servers" in options.phases:
            server_phase(bench_rig, options, results)
            bench_rig.clean_redis()
        if "limits" in options.phases:
            limits_phase(bench_rig, options, results)
    results.conditions["duration"] = f"{(time.monotonic() - started) / 60:.1f} minutes"
    results.conditions["other work"] = (
        f"about {other_work.cores():.2f} of the {os.cpu_count()} cores were busy with work that was not the "
        "bench's, on average over the run"
    )
    path = write_report(results, complete=set(options.phases) == set(PHASES))
    log(f"report: {path.relative_to(PROJECT_DIR)}")
    sys.stdout.write(render(results))


if __name__ == "__main__":
    main()
