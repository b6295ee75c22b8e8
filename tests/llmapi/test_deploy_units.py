"""The systemd units in deploy/systemd, checked by systemd itself against this checkout."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from llmapi.server import WORKER_STOP_MARGIN_SECONDS
from tests.helpers import PROJECT_DIR

UNITS = PROJECT_DIR / "deploy" / "systemd"
INSTALLED_AT = "/opt/llmapi"


def unit_here(unit: Path, directory: Path, name: str) -> Path:
    """The unit as if the project were installed at this checkout, run by the current user."""
    text = unit.read_text().replace(INSTALLED_AT, str(PROJECT_DIR)).replace("/etc/llmapi/env", "/dev/null")
    lines = [line for line in text.splitlines() if not line.startswith(("User=", "Group="))]
    path = directory / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_finds_nothing_wrong_in_the_units(tmp_path):
    names = {"llmapi-web@.service": "llmapi-web@8000.service"}
    units = [unit_here(unit, tmp_path, names.get(unit.name, unit.name)) for unit in sorted(UNITS.glob("*.service"))]
    assert len(units) == 3
    checked = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *map(str, units)], capture_output=True, text=True
    )
    assert (checked.returncode, checked.stderr) == (0, "")


def test_the_web_unit_waits_out_the_grace_period_before_killing():
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read(UNITS / "llmapi-web@.service")
    service = unit["Service"]
    assert service["KillMode"] == "mixed"  # SIGTERM to the launcher only; it drains its workers
    assert int(service["TimeoutStopSec"]) >= settings.WEB_GRACE_SECONDS + WORKER_STOP_MARGIN_SECONDS
