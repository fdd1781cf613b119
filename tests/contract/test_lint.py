"""The code that ships is lint-clean and formatted: `ruff check` and `ruff format --check` on
the contracts, the libraries and the services, as part of `make test`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ["contracts", "libs", "services"]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_finds_nothing_to_change(command: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", *command, *SHIPPED], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
