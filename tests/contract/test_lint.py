"""The code that ships is lint-clean, formatted and type-checked: `ruff check`, `ruff format
--check` and `mypy` (pydantic plugin, the configuration in pyproject.toml) on the contracts, the
libraries and the services, as part of `make test`; and the lock the Makefile installs from pins
what pyproject.toml asks for."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ["contracts", "libs", "services"]
TYPE_CHECKED = [
    "contracts/signgate_contracts",
    "contracts/signgate_client",
    "libs",
    "services",
]
LOCK = ROOT / "requirements.lock"
RUNTIME_LOCK = ROOT / "requirements-runtime.lock"
LOCAL = {"signgate-contracts"}  # installed from ./contracts, not from the index


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_finds_nothing_to_change(command: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", *command, *SHIPPED], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_no_error() -> None:
    """The cache is the repository's (.mypy_cache, git-ignored): after the first run, mypy reads
    again only what changed, in a second or two."""
    result = subprocess.run([sys.executable, "-m", "mypy", *TYPE_CHECKED], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def _pins(lock: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """Each package the lock names: its version and its hashes."""
    pins: dict[str, tuple[str, frozenset[str]]] = {}
    for entry in re.split(r"\n(?=\S)", lock.read_text()):
        match = re.match(r"([A-Za-z0-9._-]+)==(\S+)", entry)
        if match:
            hashes = frozenset(re.findall(r"--hash=(sha256:[0-9a-f]{64})", entry))
            pins[canonicalize_name(match[1])] = (match[2], hashes)
    return pins


def _asked(extras: list[str]) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    asked = [*project["dependencies"]]
    for extra in extras:
        asked += project["optional-dependencies"][extra]
    contracts = tomllib.loads((ROOT / "contracts" / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in [*asked, *contracts["dependencies"]]]


@pytest.mark.parametrize(("lock", "extras"), [(LOCK, ["embedded", "test"]), (RUNTIME_LOCK, [])],
                         ids=["lock", "runtime-lock"])
def test_the_lock_pins_what_pyproject_asks_for(lock: Path, extras: list[str]) -> None:
    """Every dependency (with the extras `make run` and `make test` install) is pinned, each pin
    within its range, every pin with its hashes: a changed pyproject.toml needs `make lock`."""
    pins = _pins(lock)
    assert pins and all(hashes for _, hashes in pins.values())
    wrong = [
        str(requirement)
        for requirement in _asked(extras)
        if canonicalize_name(requirement.name) not in LOCAL
        and (
            canonicalize_name(requirement.name) not in pins
            or not requirement.specifier.contains(
                pins[canonicalize_name(requirement.name)][0], prereleases=True
            )
        )
    ]
    assert wrong == [], f"not pinned or out of range in {lock.name} (run `make lock`): {wrong}"


def test_the_image_installs_the_same_pins_as_the_tests() -> None:
    """The image's lock is a share of the Makefile's: the same versions, the same hashes."""
    everything, runtime = _pins(LOCK), _pins(RUNTIME_LOCK)
    assert {name: everything.get(name) for name in runtime} == runtime
