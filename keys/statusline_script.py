#!/usr/bin/env python3
"""LLM API status line for Claude Code: your plan and where you stand in its windows, on one line.

Claude Code runs it as its `statusLine` command (settings.json):

    "statusLine": {"type": "command", "command": "python3 ~/.claude/llmapi-statusline.py"}

It reads ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN) from the environment
Claude Code runs in, asks GET /llmapi/usage with a short timeout, keeps the answer for a few
seconds, and prints for example:

    LLM API Pro · 5h 12/400 · week 80/2,000 · resets 14:05

When the service cannot be reached it prints a short line instead and still exits 0.
Python 3.8 or newer, standard library only.
"""

import calendar
import hashlib
import json
import os
import sys
import time
import urllib.request

TIMEOUT_SECONDS = 2.0
KEPT_SECONDS = 10.0
FALLBACK = "LLM API · usage unavailable"


def main() -> None:
    sys.stdin.read()  # Claude Code's session details: not needed here
    base_url = os.environ.get("ANTHROPIC_BASE_URL", "").rstrip("/")
    key = os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN") or ""
    report = kept_report(base_url, key) if base_url and key else None
    try:
        line = status_line(report) if report else FALLBACK
    except (KeyError, TypeError, ValueError, AttributeError):  # an answer of another shape
        line = FALLBACK
    print(line)


def kept_report(base_url: str, key: str):
    """The last answer if it is recent, else a new one (kept for the next call)."""
    folder = os.path.join(os.path.expanduser("~"), ".cache", "llmapi-statusline")
    cache = os.path.join(folder, hashlib.sha256((base_url + key).encode()).hexdigest()[:16] + ".json")
    try:
        if time.time() - os.path.getmtime(cache) < KEPT_SECONDS:
            with open(cache) as kept:
                return json.load(kept)
    except (OSError, ValueError):
        pass
    report = fetch_report(base_url, key)
    if report is not None:
        try:
            os.makedirs(folder, exist_ok=True)
            with open(cache, "w") as kept:
                json.dump(report, kept)
        except OSError:
            pass
    return report


def fetch_report(base_url: str, key: str):
    if not base_url.startswith(("https://", "http://")):
        return None
    request = urllib.request.Request(base_url + "/llmapi/usage", headers={"x-api-key": key})  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - http(s) only
            return json.load(response)
    except Exception:  # unreachable, refused, not JSON: the fallback line says enough
        return None


def status_line(report: dict) -> str:
    parts = ["LLM API " + report["plan"]["name"]]
    windows = report.get("windows")
    if windows:
        five_hours, week = windows["5h"], windows["week"]
        parts.append("5h {:,}/{:,}".format(five_hours["used"], five_hours["limit"]))
        parts.append("week {:,}/{:,}".format(week["used"], week["limit"]))
        binding = week if week["remaining"] < five_hours["remaining"] else five_hours
        parts.append("resets " + local_time(binding["resets_at"]))
    return " · ".join(parts)


def local_time(rfc3339: str) -> str:
    """An RFC 3339 time (2026-12-01T14:05:00.000Z) on the local clock: 14:05 today, else Dec 03 14:05."""
    local = time.localtime(calendar.timegm(time.strptime(rfc3339[:19], "%Y-%m-%dT%H:%M:%S")))
    if time.strftime("%Y-%m-%d", local) == time.strftime("%Y-%m-%d"):
        return time.strftime("%H:%M", local)
    return time.strftime("%b %d %H:%M", local)


if __name__ == "__main__":
    main()
