"""`signgate-contracts` as an integrator gets it: built as a wheel, installed into a fresh venv, and
imported with only the dependencies its metadata declares (per extra) present beside it.

The venv gets no index: each declared requirement (and what it requires in turn) is linked in from
the distribution the project's own venv installed, so nothing is downloaded and a module that
imports an undeclared package fails here exactly as it would after ``pip install``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"

# Imports every module of both packages but the ones named, and prints what failed.
IMPORT_ALL = """
import importlib, json, pkgutil, sys
skip = set(sys.argv[1:])
failed = {}
for package in ("signgate_contracts", "signgate_client"):
    try:
        root = importlib.import_module(package)
    except ImportError as error:
        failed[package] = str(error)
        continue
    for module in pkgutil.walk_packages(root.__path__, package + "."):
        if module.name in skip:
            continue
        try:
            importlib.import_module(module.name)
        except ImportError as error:
            failed[module.name] = str(error)
print(json.dumps(failed))
"""


def closure(requirements: Iterable[str], extras: frozenset[str] = frozenset()) -> set[str]:
    """The distributions ``requirements`` pull in (for ``extras``), as found in this venv."""
    found: set[str] = set()
    pending = [(Requirement(text), extras) for text in requirements]
    while pending:
        requirement, wanted = pending.pop()
        environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
        if requirement.marker is not None and not any(
            requirement.marker.evaluate(environment) for environment in environments
        ):
            continue
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        found.add(name)
        pending += [
            (Requirement(text), frozenset(requirement.extras))
            for text in metadata.distribution(name).requires or []
        ]
    return found


def link(distribution: str, site: Path) -> None:
    """Make ``distribution``, as installed in this venv, importable from ``site``."""
    dist = metadata.distribution(distribution)
    source = Path(str(dist.locate_file("")))
    for top in {Path(str(file)).parts[0] for file in dist.files or []}:
        if top != ".." and not (site / top).exists():
            (site / top).symlink_to(source / top)


def declared(site: Path) -> metadata.Distribution:
    return metadata.Distribution.at(next(site.glob("signgate_contracts-*.dist-info")))


def imports(python: Path, *skip: str) -> dict[str, str]:
    """The modules of both packages that fail to import in the venv, with their errors."""
    done = subprocess.run(
        [str(python), "-I", "-c", IMPORT_ALL, *skip],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return dict(json.loads(done.stdout))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fresh venv (no pip, no site packages) with the contracts' wheel installed in it alone."""
    work = tmp_path_factory.mktemp("install")
    source = work / "contracts"
    shutil.copytree(CONTRACTS, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", work, source],
        check=True,
        timeout=120,
    )
    target = work / "venv"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    wheel = next(work.glob("signgate_contracts-*.whl"))
    subprocess.run(
        [*pip, "--python", python, "install", "--no-deps", "--no-index", "--no-compile", wheel],
        check=True,
        timeout=120,
    )
    site = Path(
        subprocess.run(
            [python, "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    return python, site


def test_the_wheel_ships_its_type_markers_and_schemas(installed: tuple[Path, Path]) -> None:
    """The installed packages carry py.typed (both) and the exported JSON Schemas."""
    _, site = installed
    assert (site / "signgate_contracts" / "py.typed").is_file()
    assert (site / "signgate_client" / "py.typed").is_file()
    assert (site / "signgate_contracts" / "schemas" / "topics.json").is_file()


def test_each_extra_declares_what_its_modules_import(installed: tuple[Path, Path]) -> None:
    """With only the base requirements the contracts import and the client says which extra it
    needs; `[client]` adds the client (all but the grant verifier); `[verify]` adds the verifier."""
    python, site = installed
    requires = declared(site).requires or []
    base = closure(requires)
    for name in base:
        link(name, site)
    failed = imports(python)
    assert set(failed) == {"signgate_client"}, failed
    assert "signgate-contracts[client]" in failed["signgate_client"]

    for name in closure(requires, frozenset({"client"})) - base:
        link(name, site)
    assert imports(python) == {
        "signgate_client.grants": "No module named 'jwt'",
        "signgate_client.jwks": "No module named 'cryptography'",
    }

    for name in closure(requires, frozenset({"client", "verify"})):
        link(name, site)
    assert imports(python) == {}
