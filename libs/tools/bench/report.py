"""The bench's table: one row per figure, with the ratio that matters, printed and saved as JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Row:
    figure: str
    value: float
    unit: str
    ratio: float | None = None
    against: str = ""
    """What the ratio is taken against."""
    target: str = ""
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    context: dict = field(default_factory=dict)
    """Machine, load average, options: what a reader needs to trust the figures."""
    runs: dict = field(default_factory=dict)
    """Every load run's raw figures, by name."""

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def table(self) -> str:
        header = ("figure", "value", "ratio", "target", "note")
        lines = [header]
        for row in self.rows:
            ratio = "" if row.ratio is None else f"{row.ratio:.0%} of {row.against}"
            lines.append(
                (
                    row.figure,
                    f"{_number(row.value)} {row.unit}".strip(),
                    ratio,
                    row.target,
                    row.note,
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        rendered = [
            " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip()
            for line in lines
        ]
        rendered.insert(1, "-+-".join("-" * w for w in widths))
        return "\n".join(rendered)

    def as_dict(self) -> dict:
        return {"context": self.context, "rows": [asdict(r) for r in self.rows], "runs": self.runs}

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_finite(self.as_dict()), indent=2, default=str) + "\n")


def by_role(spent: dict[str, float]) -> str:
    """CPU µs per message by role, the largest first."""
    return ", ".join(
        f"{role} {us:.0f}" for role, us in sorted(spent.items(), key=lambda item: -item[1])
    )


def _number(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


def _finite(value):
    """NaN (a run with no answers) as null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
