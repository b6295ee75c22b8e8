"""One measurement each: request load through wrk, streams through the async client, with the
gateway's CPU time and memory read from /proc around or during the run."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import orjson

from bench import procstat
from bench.servers import PROJECT_DIR, UV_RUN, GatewayServer
from bench.wrk_load import WrkResult, run_wrk

MESSAGES = "/v1/messages"
STREAM = "/v1/messages?mode=stream"  # nginx answers the fixed 20-delta stream for this query
ResultT = TypeVar("ResultT")
GATEWAY_ALL = "gateway, all processes"  # the name of the gateway's whole process tree in a CPU split
LOAD_GENERATOR = "load generator (wrk or the stream client)"


@dataclass(frozen=True, slots=True)
class Target:
    """Where load goes: the direct upstream or the gateway in front of it."""

    name: str
    base_url: str
    keys: list[str]
    server: GatewayServer | None = None  # the gateway's processes, for CPU and memory


@dataclass(frozen=True, slots=True)
class LoadResult:
    wrk: WrkResult
    cpu_ms_per_request: float  # the gateway's processes; NaN for the direct upstream


def load(target: Target, *, path: str, body_file: Path, connections: int, seconds: float) -> LoadResult:
    """wrk against the target, and the gateway's CPU time per completed request."""
    cpu_before = target.server.cpu_seconds() if target.server else 0.0
    result = run_wrk(
        target.base_url,
        path=path,
        body_file=body_file,
        keys=target.keys,
        connections=connections,
        seconds=seconds,
    )
    if target.server is None or not result.requests:
        return LoadResult(result, float("nan"))
    cpu = target.server.cpu_seconds() - cpu_before
    return LoadResult(result, cpu * 1000 / result.requests)


def client_command(*arguments: str) -> list[str]:
    return [*UV_RUN, "python", "-m", "bench.stream_client", *arguments]


def run_client(arguments: list[str], timeout: float) -> dict[str, object]:
    completed = subprocess.run(
        client_command(*arguments), cwd=PROJECT_DIR, capture_output=True, text=True, timeout=timeout, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"stream client failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return orjson.loads(completed.stdout.strip().splitlines()[-1])


def first_byte(target: Target, *, count: int) -> dict[str, object]:
    """Time to the first byte of a stream, one client, `count` requests in a row."""
    arguments = ["ttfb", "--url", target.base_url, "--count", str(count)]
    if target.keys:
        arguments += ["--key", target.keys[0]]
    return run_client(arguments, timeout=120 + count)


@dataclass
class MemorySampler:
    """Samples the gateway workers' resident memory in a thread; keeps the largest total."""

    server: GatewayServer
    interval: float = 0.25
    peak_total: int = 0
    peak_per_worker: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> MemorySampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            rss = self.server.worker_rss_bytes()
            if sum(rss) > self.peak_total:
                self.peak_total, self.peak_per_worker = sum(rss), rss


def open_streams(
    target: Target, *, streams: int, deltas: int, interval_ms: float, rate: float, live_roots: list[int]
) -> tuple[dict[str, object], MemorySampler | None]:
    """Hold `streams` paced streams open at once; the gateway's peak memory meanwhile.

    `live_roots`: the other bench processes running meanwhile (the upstreams), so that the CPU
    of work that is not the bench's can be told apart.
    """
    arguments = [
        "streams",
        "--url",
        target.base_url,
        "--streams",
        str(streams),
        "--deltas",
        str(deltas),
        "--interval-ms",
        str(interval_ms),
        "--rate",
        str(rate),
    ]
    for key in target.keys:
        arguments += ["--key", key]
    timeout = streams / rate + deltas * interval_ms / 1000 + 180
    other_work = OtherWork([*live_roots, *(target.server.root_pids if target.server else [])])
    if target.server is None:
        result, sampler = run_client(arguments, timeout), None
    else:
        with MemorySampler(target.server) as sampler:
            result = run_client(arguments, timeout)
    result["other_work_cores"] = other_work.cores()
    return result, sampler


@dataclass(frozen=True, slots=True)
class CpuSplit:
    """Where the machine's CPU went during one run, in cores (1.0 = one core busy throughout)."""

    seconds: float
    cores: dict[str, float]  # our processes, by name
    machine: dict[str, float]  # the whole machine by kind of time (/proc/stat)
    others: dict[str, float]  # the busiest processes that are not ours


STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def machine_times() -> dict[str, float]:
    """CPU seconds of the whole machine (all cores) by kind, from /proc/stat."""
    values = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return {name: int(value) / procstat.CLOCK_TICKS for name, value in zip(STAT_FIELDS, values, strict=False)}


def machine_cores(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    delta = {name: (after[name] - before[name]) / seconds for name in STAT_FIELDS}
    return {
        "user": delta["user"] + delta["nice"],
        "system": delta["system"],
        "interrupts (softirq: loopback TCP)": delta["irq"] + delta["softirq"],
        "steal (taken by the hypervisor)": delta["steal"],
        "busy in all": sum(delta.values()) - delta["idle"] - delta["iowait"] - delta["steal"],
    }


def redis_server_pids() -> list[int]:
    return [info.pid for info in procstat.all_processes() if info.cmdline.startswith("redis-server")]


def cpu_by_process() -> dict[int, tuple[str, float]]:
    return {info.pid: (info.cmdline[:60], info.cpu_seconds) for info in procstat.all_processes()}


def cpu_split(run: Callable[[], ResultT], parts: dict[str, list[int]]) -> tuple[ResultT, CpuSplit]:
    """Run `run()` and split the CPU time it took among the named process trees, the load
    generator (the child processes `run()` waited for) and the rest."""
    before = {name: procstat.tree_cpu_seconds(pids) for name, pids in parts.items()}
    ours = {info.pid for pids in parts.values() for root in pids for info in procstat.process_tree(root)}
    everyone_before, machine_before = cpu_by_process(), machine_times()
    children_before, started = os.times(), time.monotonic()
    result = run()
    seconds = time.monotonic() - started
    children_after, machine_after, everyone_after = os.times(), machine_times(), cpu_by_process()
    cores = {name: (procstat.tree_cpu_seconds(pids) - before[name]) / seconds for name, pids in parts.items()}
    wrk_cpu = (children_after.children_user - children_before.children_user) + (
        children_after.children_system - children_before.children_system
    )
    cores[LOAD_GENERATOR] = wrk_cpu / seconds
    others = Counter[str]()
    for pid, (name, cpu) in everyone_after.items():
        if pid not in ours and pid != os.getpid() and pid in everyone_before:
            others[name] += (cpu - everyone_before[pid][1]) / seconds
    busiest = {name: cores for name, cores in others.most_common(5) if cores >= 0.01}
    machine = machine_cores(machine_before, machine_after, seconds)
    ours_cores = cores[GATEWAY_ALL] + sum(value for name, value in cores.items() if not name.startswith("gateway"))
    machine["charged to no running process (interrupts, exited processes)"] = max(
        0.0, machine["busy in all"] - ours_cores - sum(others.values())
    )
    return result, CpuSplit(seconds, cores, machine, busiest)


class OtherWork:
    """How much CPU the rest of the machine used while the bench ran (it is shared)."""

    def __init__(self, live_roots: list[int]) -> None:
        self.live_roots = live_roots  # bench processes that will still run at the end: counted as ours
        self.machine, self.started = machine_times(), time.monotonic()
        self.own, self.live = self._own_cpu(), self._live_cpu()

    @staticmethod
    def _own_cpu() -> float:
        times = os.times()  # this process and every child it has waited for, with theirs
        return times.user + times.system + times.children_user + times.children_system

    def _live_cpu(self) -> float:
        return procstat.tree_cpu_seconds([*self.live_roots, *redis_server_pids()])

    def cores(self) -> float:
        """Average cores busy with work that is not the bench's."""
        machine, seconds = machine_times(), time.monotonic() - self.started
        # Interrupt time too: on this kernel the loopback TCP work in softirq is charged to the
        # process it interrupted, so the bench's own process times include theirs.
        busy = sum(machine[name] - self.machine[name] for name in ("user", "nice", "system", "irq", "softirq"))
        ours = (self._own_cpu() - self.own) + (self._live_cpu() - self.live)
        return max(0.0, busy - ours) / seconds
