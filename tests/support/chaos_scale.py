"""Short or long form of the chaos and security suites, and where their figures are reported.

``make test`` runs the short form; ``make chaos`` and ``make security`` set
``SIGNGATE_CHAOS_SCALE=long``. Figures (counts, timings) are printed and appended as JSON lines
to ``SIGNGATE_CHAOS_REPORT`` (default ``.signgate/chaos-report.jsonl``); they never fail a test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.support.processes import ROOT

LONG = os.environ.get("SIGNGATE_CHAOS_SCALE", "short") == "long"


def scaled(short: int, long: int) -> int:
    return long if LONG else short


def report(name: str, **figures: Any) -> None:
    """Print and keep one suite's figures."""
    line = json.dumps({"suite": name, "scale": "long" if LONG else "short", **figures}, default=str)
    print(f"\nREPORT {line}")
    path = Path(os.environ.get("SIGNGATE_CHAOS_REPORT", ROOT / ".signgate" / "chaos-report.jsonl"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(line + "\n")
