"""Process facts read straight from /proc: the tree under a PID, CPU time and resident memory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    ppid: int
    cpu_seconds: float  # user + system
    rss_bytes: int
    cmdline: str


def read_process(pid: int) -> ProcessInfo | None:
    """One process's facts, or None if it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        statm = Path(f"/proc/{pid}/statm").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces; everything after its closing parenthesis is split.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return ProcessInfo(
        pid=pid,
        ppid=int(fields[1]),
        cpu_seconds=(utime + stime) / CLOCK_TICKS,
        rss_bytes=int(statm.split()[1]) * PAGE_SIZE,
        cmdline=cmdline.strip(),
    )


def all_processes() -> list[ProcessInfo]:
    processes = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := read_process(int(entry))) is not None:
            processes.append(info)
    return processes


def process_tree(root_pid: int) -> list[ProcessInfo]:
    """The root and all its descendants (the root first)."""
    processes = all_processes()
    children: dict[int, list[ProcessInfo]] = {}
    root = None
    for info in processes:
        children.setdefault(info.ppid, []).append(info)
        if info.pid == root_pid:
            root = info
    if root is None:
        return []
    tree, pending = [root], [root_pid]
    while pending:
        for child in children.get(pending.pop(), []):
            tree.append(child)
            pending.append(child.pid)
    return tree


def worker_processes(root_pids: list[int]) -> list[ProcessInfo]:
    """The serving processes under the roots: leaves of each tree, without helper processes."""
    workers = []
    for root_pid in root_pids:
        tree = process_tree(root_pid)
        parents = {info.ppid for info in tree}
        workers.extend(info for info in tree if info.pid not in parents and "resource_tracker" not in info.cmdline)
    return workers


def tree_cpu_seconds(root_pids: list[int]) -> float:
    """CPU time (user + system) of every process under the roots, the roots included."""
    return sum(info.cpu_seconds for root in root_pids for info in process_tree(root))
