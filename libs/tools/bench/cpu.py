"""CPU time the bench's processes spend on a load, by role: what each figure costs the machine.

Every process the bench started (the services, the echo, and the embedded servers with their
workers) is a descendant of the bench process; the load generator is left out, as it stands
for the callers. Throughput on two shared cores is set by the sum, so the sum per message is
what to compare: the echo's against a verification's.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping

import psutil

SERVERS = {"tansu": "broker", "postgres": "postgres", "redis-server": "redis"}


def _role(process: psutil.Process, services: Mapping[int, str]) -> str | None:
    for ancestor in [process, *process.parents()]:
        if ancestor.pid in services:
            return services[ancestor.pid]
    name = process.name()
    for prefix, role in SERVERS.items():
        if name.startswith(prefix):
            return role
    command = " ".join(process.cmdline())
    if "libs.tools.bench.ceiling" in command:
        return "echo"
    return None  # the bench itself, the load generator


def cpu_seconds(services: Mapping[int, str]) -> Counter[str]:
    """CPU seconds (user + system) so far of every live descendant, by role; ``services`` names
    the processes the bench started by pid."""
    spent: Counter[str] = Counter()
    for process in psutil.Process(os.getpid()).children(recursive=True):
        try:
            role = _role(process, services)
            if role is not None:
                times = process.cpu_times()
                spent[role] += times.user + times.system
        except psutil.Error:
            continue  # gone meanwhile
    return spent


def per_message(before: Counter[str], after: Counter[str], messages: int) -> dict[str, float]:
    """Microseconds of CPU per message, by role, of what was spent between two readings."""
    return {
        role: (after[role] - before[role]) / messages * 1e6
        for role in after
        if after[role] > before[role]
    }
