"""Fixtures for driving real Anthropic clients (the TypeScript SDK, Claude Code) at the live gateway.

The npm packages are installed by `make test` (`npm ci --prefix tests/wire`) before pytest runs:
a test never reaches the network. A machine without node, npm or that install fails these tests
with a message saying so; they never skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

WIRE_DIR = Path(__file__).resolve().parent
SCRIPTS_DIR = WIRE_DIR / "js"
NODE_MODULES = WIRE_DIR / "node_modules"
CLAUDE_BIN = NODE_MODULES / ".bin" / "claude"
INSTALL_HINT = "run `make test` (it runs `npm ci --prefix tests/wire`) or that npm command by hand"

# Long enough for a cold start on a slow machine; the processes normally finish in about a second.
PROCESS_TIMEOUT = 120


def clean_env(home: Path, **variables: str) -> dict[str, str]:
    """A child environment with nothing of ours in it but PATH: no ANTHROPIC_* or proxy leaks in."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        **variables,
    }


@dataclass
class NodeRunner:
    """Runs the scripts under tests/wire/js with `node` and reads the JSON line they print."""

    node: str
    home: Path

    def run(self, script: str, *args: str, **env: str) -> dict[str, Any]:
        completed = subprocess.run(
            [self.node, str(SCRIPTS_DIR / script), *args],
            cwd=WIRE_DIR,
            env=clean_env(self.home, **env),
            capture_output=True,
            text=True,
            timeout=PROCESS_TIMEOUT,
            check=False,
        )
        assert completed.returncode == 0, (
            f"{script} exited with {completed.returncode}\n"
            f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
        )
        return json.loads(completed.stdout.strip().splitlines()[-1])


def require_install(path: Path) -> None:
    if not path.exists():
        pytest.fail(f"{path.relative_to(WIRE_DIR.parent.parent)} is missing: {INSTALL_HINT}", pytrace=False)


@pytest.fixture(scope="session")
def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("`node` is not on the PATH: the wire tests need Node.js and npm installed", pytrace=False)
    require_install(NODE_MODULES / "@anthropic-ai" / "sdk" / "package.json")
    return node


@pytest.fixture
def node(node_binary: str, tmp_path: Path) -> NodeRunner:
    home = tmp_path / "home"
    home.mkdir()
    return NodeRunner(node_binary, home)


@pytest.fixture(scope="session")
def claude_binary() -> Path:
    require_install(CLAUDE_BIN)
    return CLAUDE_BIN
