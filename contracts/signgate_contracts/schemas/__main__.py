"""``python -m signgate_contracts.schemas``: re-export the JSON Schemas of every message.

Writes ``<type>.json`` per message type and ``topics.json`` into the schemas folder and
prints what changed. The committed files are the compatibility baseline, so the exporter
does not overwrite them with a breaking change (a removed or newly required field, a
narrowed type) unless given ``--allow-breaking``, and deletes the schema of a type that is
no longer registered only with ``--prune``. Exit status 1 when something was held back,
or, with ``--check``, when anything would change.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from signgate_contracts.schemas import SCHEMA_DIR, TOPIC_INDEX, committed_files, exported_files
from signgate_contracts.schemas.compatibility import (
    breaking_changes,
    topic_index_breaking_changes,
)

_ADVICE = "add a new message type instead, or pass --allow-breaking if nobody depends on it yet"


@dataclass
class Plan:
    """What an export would do to the schema folder."""

    write: dict[str, str] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    held_back: dict[str, list[str]] = field(default_factory=dict)
    """File name → why it was not written (its breaking changes) or not removed."""

    @property
    def changes_anything(self) -> bool:
        return bool(self.created or self.updated or self.removed or self.held_back)


def plan_export(
    committed: dict[str, str], exported: dict[str, str], *, prune: bool, allow_breaking: bool
) -> Plan:
    """Decide, file by file, what to write, keep or remove."""
    plan = Plan()
    for name, text in exported.items():
        old = committed.get(name)
        if old is None:
            plan.created.append(name)
        elif old == text:
            plan.unchanged.append(name)
            continue
        else:
            breaking = _breaking(name, old, text)
            if breaking and not allow_breaking:
                plan.held_back[name] = breaking
                continue
            plan.updated.append(name)
        plan.write[name] = text
    for name in committed.keys() - exported.keys():
        if prune:
            plan.removed.append(name)
        else:
            plan.held_back[name] = [
                "message type no longer registered; removing it is a breaking change "
                "(pass --prune to delete the file)"
            ]
    return plan


def _breaking(name: str, old: str, new: str) -> list[str]:
    if name == TOPIC_INDEX:
        return topic_index_breaking_changes(json.loads(old), json.loads(new))
    return breaking_changes(json.loads(old), json.loads(new))


def apply(plan: Plan, directory: Path) -> None:
    for name, text in plan.write.items():
        (directory / name).write_text(text, encoding="utf-8")
    for name in plan.removed:
        (directory / name).unlink()


def report(plan: Plan, *, dry_run: bool) -> str:
    would = "would be " if dry_run else ""
    lines = [f"{would}created  {name}" for name in sorted(plan.created)]
    lines += [f"{would}updated  {name}" for name in sorted(plan.updated)]
    lines += [f"{would}removed  {name}" for name in sorted(plan.removed)]
    for name, reasons in sorted(plan.held_back.items()):
        lines.append(f"held back  {name}:")
        lines += [f"    {reason}" for reason in reasons]
    if any(name != TOPIC_INDEX for name in plan.held_back):
        lines.append(f"  -> {_ADVICE}")
    lines.append(
        f"{len(plan.created)} created, {len(plan.updated)} updated, {len(plan.removed)} removed, "
        f"{len(plan.unchanged)} unchanged, {len(plan.held_back)} held back"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m signgate_contracts.schemas", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="where the schemas live")
    parser.add_argument(
        "--prune",
        action="store_true",
        help="delete schemas of message types that are no longer registered",
    )
    parser.add_argument(
        "--allow-breaking",
        action="store_true",
        help="overwrite committed schemas even with a breaking change",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the committed schemas are out of date",
    )
    args = parser.parse_args(argv)

    plan = plan_export(
        committed_files(args.dir),
        exported_files(),
        prune=args.prune,
        allow_breaking=args.allow_breaking,
    )
    if not args.check:
        args.dir.mkdir(parents=True, exist_ok=True)
        apply(plan, args.dir)
    print(report(plan, dry_run=args.check))
    failed = plan.changes_anything if args.check else bool(plan.held_back)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
