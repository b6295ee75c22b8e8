"""The Claude Code status line script (keys/statusline_script.py), downloaded from the site and run
as Claude Code runs it: session JSON on stdin, the environment Claude Code has, one line out."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.gateway.test_key_usage import send_messages

SESSION = {"session_id": "s-1", "model": {"id": "claude-opus-5-5", "display_name": "Opus"}, "workspace": {}}


def download(base_url: str, folder: Path) -> Path:
    response = httpx.get(base_url + "/llmapi-statusline.py")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="llmapi-statusline.py"'
    script = folder / "llmapi-statusline.py"
    script.write_bytes(response.content)
    return script


def run_status_line(script: Path, home: Path, base_url: str, key: str) -> subprocess.CompletedProcess:
    env = {"HOME": str(home), "TZ": "UTC", "ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": key}
    return subprocess.run(
        [sys.executable, str(script)],
        input=json.dumps(SESSION),
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def shown_time(rfc3339: str) -> str:
    """A time as the script shows it, the clock being UTC here: HH:MM today, with the date after
    midnight (a 5-hour window opened after 19:00 ends tomorrow)."""
    moment = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    return moment.strftime("%H:%M" if moment.date() == datetime.now(UTC).date() else "%b %d %H:%M")


def test_the_line_shows_the_plan_and_windows_and_is_kept_a_few_seconds(gateway, tmp_path):
    script = download(gateway.base_url, tmp_path)
    send_messages(gateway.base_url, gateway.key, 3)
    windows = httpx.get(gateway.base_url + "/llmapi/usage", headers={"x-api-key": gateway.key}).json()["windows"]
    assert windows["5h"]["used"] == windows["week"]["used"] == 3
    five_hours, week = windows["5h"]["limit"], windows["week"]["limit"]
    reset = shown_time(windows["5h"]["resets_at"])

    shown = run_status_line(script, tmp_path, gateway.base_url, gateway.key)
    assert (shown.returncode, shown.stderr) == (0, "")
    assert shown.stdout == f"LLM API Max 20x · 5h 3/{five_hours:,} · week 3/{week:,} · resets {reset}\n"

    # Asked again at once, after one more request: the answer kept a few seconds is shown.
    send_messages(gateway.base_url, gateway.key, 1)
    again = run_status_line(script, tmp_path, gateway.base_url, gateway.key)
    assert again.stdout == shown.stdout


def test_an_unreachable_or_silent_service_gives_the_short_line_within_the_timeout(gateway, tmp_path):
    script = download(gateway.base_url, tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        for base_url in ("http://127.0.0.1:9", silent_url):
            shown = run_status_line(script, tmp_path, base_url, gateway.key)
            assert (shown.returncode, shown.stdout) == (0, "LLM API · usage unavailable\n")
    refused = run_status_line(script, tmp_path, gateway.base_url, "sk-llmapi-not-a-real-key")
    assert refused.stdout == "LLM API · usage unavailable\n"
