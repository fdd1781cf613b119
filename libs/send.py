"""``python -m libs.send TOPIC JSON``: the first tool, kept as an alias of ``signgate send json JSON``.

The topic and key now follow from the command's ``type`` (`signgate_client.route`); a TOPIC that
is not the command's is refused rather than silently ignored.
"""

from __future__ import annotations

import json
import sys

from libs.cli import app
from signgate_client import parse_command, route


def main() -> None:
    if len(sys.argv) not in (3, 4):
        raise SystemExit("usage: python -m libs.send TOPIC JSON  (or: signgate send json JSON)")
    topic, body = sys.argv[1], sys.argv[2]
    expected = route(parse_command(json.loads(body))).topic.name
    if topic != expected:
        raise SystemExit(f"that command goes to {expected}, not {topic}")
    app(["send", "json", body], prog_name="python -m libs.send")


if __name__ == "__main__":
    main()
