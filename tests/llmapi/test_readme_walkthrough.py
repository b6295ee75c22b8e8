"""The README's commands, run verbatim in a fresh clone on a machine without uv on the PATH.

The clone gets the committed tree only, an environment without the project's variables (no DEBUG,
no SECRET_KEY, no DATABASE_URL or REDIS_URL) and a PATH without uv, as a newcomer's machine has.
The laptop walk-through runs in order: `make run` (on a free port: PORT overrides, as the README
says), the simulated backend, then the third terminal's lines in one shell. uv's and pip's caches
are shared with this machine, so nothing is downloaded twice.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.helpers import PROJECT_DIR, free_port, wait_for_http
from tests.servers import kill_group

pytestmark = pytest.mark.fresh_clone

PROJECT_VARIABLES = {
    "DEBUG",
    "SECRET_KEY",
    "API_KEY_HASH_SECRET",
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "PUBLIC_BASE_URL",
    "DJANGO_SETTINGS_MODULE",
    "VIRTUAL_ENV",
    "UV",
}
SETUP_TIMEOUT = 600  # the first `make run` installs uv and the environment


def readme_block(heading: str) -> list[str]:
    """The lines of the first indented block under a README heading, indentation removed."""
    text = (PROJECT_DIR / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"((?:^    .*\n)+)", section, flags=re.MULTILINE)
    assert block, f"no command block under {heading!r}"
    return [line.removeprefix("    ") for line in block.group(1).splitlines()]


def commands(lines: list[str]) -> list[str]:
    """Lines ending with a backslash continue on the next one."""
    joined: list[str] = []
    for line in lines:
        if joined and joined[-1].endswith("\\"):
            joined[-1] += "\n" + line
        else:
            joined.append(line.strip())
    return joined


def newcomer_path() -> str:
    """This PATH minus every folder holding uv and the project's own environments."""
    kept = []
    for folder in os.environ["PATH"].split(os.pathsep):
        if not folder or (Path(folder) / "uv").exists() or ".venv" in folder or ".tools" in folder:
            continue
        kept.append(folder)
    return os.pathsep.join(kept)


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("git"):
        pytest.fail("git is needed to clone the project")
    target = tmp_path_factory.mktemp("fresh") / "llmapi"
    subprocess.run(["git", "clone", "--quiet", str(PROJECT_DIR), str(target)], check=True, timeout=120)
    return target


@pytest.fixture(scope="module")
def newcomer_env() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in PROJECT_VARIABLES}
    env["PATH"] = newcomer_path()
    return env


@contextmanager
def background(command: str, *, cwd: Path, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["bash", "-c", command], cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            kill_group(process)


def test_walkthrough_runs_verbatim_in_a_fresh_clone(clone: Path, newcomer_env: dict[str, str], tmp_path: Path):
    assert shutil.which("uv", path=newcomer_env["PATH"]) is None
    product_port, backend_port = free_port(), free_port()
    lines = commands(readme_block("Try the whole loop on a laptop"))
    run, simulator, *terminal_three = lines
    assert run.split("#")[0].strip() == "make run"
    assert "simulate_upstream --port 8100" in simulator

    def aimed(command: str) -> str:
        return command.replace("8100", str(backend_port)).replace("127.0.0.1:8000", f"127.0.0.1:{product_port}")

    product_env = {**newcomer_env, "PORT": str(product_port)}  # `make run` reads PORT like any make variable
    with background(run, cwd=clone, env=product_env, log=tmp_path / "run.log") as product:
        wait_for_http(f"http://127.0.0.1:{product_port}/", product, timeout=SETUP_TIMEOUT)
        with background(aimed(simulator), cwd=clone, env=newcomer_env, log=tmp_path / "sim.log") as backend:
            wait_for_http(f"http://127.0.0.1:{backend_port}/v1/models", backend)
            script = "set -euo pipefail\n" + "\n".join(aimed(line) for line in terminal_three)
            result = subprocess.run(
                ["bash", "-c", script], cwd=clone, env=newcomer_env, capture_output=True, text=True, timeout=120
            )
        docs_page = httpx.get(f"http://127.0.0.1:{product_port}/docs/").text

    assert result.returncode == 0, result.stderr
    assert "event: message_start" in result.stdout
    assert "event: message_stop" in result.stdout
    assert "Created user you@example.com" in result.stderr
    # The pages name the address `make run` serves, not the default port.
    assert f"ANTHROPIC_BASE_URL=http://127.0.0.1:{product_port}" in docs_page
    assert "127.0.0.1:8000" not in docs_page
    # The generated development settings are there and ignored by git, like everything else made.
    assert (clone / ".env").read_text().count("SECRET_KEY=") == 1
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == ""


def test_setup_commands_are_the_make_targets(clone: Path):
    setup = commands(readme_block("Set up"))
    assert [line.split("#")[0].strip() for line in setup] == ["make run", "make test"]
    help_text = subprocess.run(["make", "help"], cwd=clone, capture_output=True, text=True, check=True).stdout
    assert "make run" in help_text
    assert "make test" in help_text


def test_no_documented_command_needs_uv_on_the_path():
    documents = [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))]
    offenders = [
        f"{document.name}: {line.strip()}"
        for document in documents
        for line in document.read_text().splitlines()
        if re.search(r"(^|`|\s)uv run ", line)
    ]
    assert offenders == []
