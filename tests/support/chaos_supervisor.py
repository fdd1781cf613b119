"""The four services as OS processes, and a supervisor that SIGKILLs one at random and restarts it."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from pathlib import Path

from libs.runtime.settings import ConnectionSettings
from tests.support.processes import ServiceProcess, service_env
from tests.support.workflow_driver import CHEAP_ARGON2

FACTORIES = {
    "identity": "services.identity.app:create_app",
    "workflow": "services.workflow.app:create_app",
    "authentication": "services.authentication.app:create_app",
    "otp_dispatch": "services.otp_dispatch.app:create_app",
}


def chaos_env(connections: ConnectionSettings, secrets: dict[str, str], sandbox: Path) -> dict[str, str]:
    """One environment for every service: shared secrets, cheap hashing, consumers that hand their
    partitions over within seconds of a crash."""
    tuning = {}
    for name in FACTORIES:
        prefix = f"SIGNGATE_{name.upper()}_"
        tuning |= {f"{prefix}SESSION_TIMEOUT_MS": "3000", f"{prefix}HEARTBEAT_INTERVAL_MS": "500",
                   f"{prefix}RETRY_FIRST_DELAY": "0.01", f"{prefix}OUTBOX_POLL_INTERVAL": "0.2"}
    return service_env(
        connections, **secrets, **tuning,
        SIGNGATE_SECRET_ARGON2_MEMORY_KIB=str(CHEAP_ARGON2["argon2_memory_kib"]),
        SIGNGATE_SECRET_ARGON2_TIME_COST=str(CHEAP_ARGON2["argon2_time_cost"]),
        SIGNGATE_OTP_DISPATCH_SANDBOX_OUTBOX=str(sandbox),
        SIGNGATE_OTP_DISPATCH_RESEND_COOLDOWN_SECONDS="0",
        SIGNGATE_OTP_DISPATCH_MAX_SENDS_PER_DESTINATION="1000000",
    )


@dataclass
class Supervisor:
    """Runs every service; ``chaos`` kills a random one every 2-5 s and starts it again at once."""

    env: dict[str, str]
    logs: Path
    seed: int = 7
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    kills: list[str] = field(default_factory=list)
    restarts: int = 0
    _killed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def start(self) -> Supervisor:
        for name in FACTORIES:
            self._start(name)
        return self

    def _start(self, name: str) -> None:
        generation = sum(1 for k in self.kills if k == name)
        self.processes[name] = ServiceProcess(FACTORIES[name], self.env,
                                              self.logs / f"{name}-{generation}.log").start()

    async def chaos(self, *, max_kills: int | None) -> None:
        rng = random.Random(self.seed)
        while max_kills is None or len(self.kills) < max_kills:
            await asyncio.sleep(rng.uniform(2.0, 5.0))  # the fault schedule, not a synchronisation
            name = rng.choice(sorted(FACTORIES))
            await asyncio.to_thread(self.processes[name].kill)
            self.kills.append(name)
            self._start(name)
            self.restarts += 1
            async with self._killed:
                self._killed.notify_all()

    async def wait_kills(self, count: int) -> None:
        """Until ``count`` kills (and restarts) have happened."""
        async with self._killed:
            await self._killed.wait_for(lambda: len(self.kills) >= count)

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()

    def logged(self) -> list[str]:
        return [line for path in sorted(self.logs.glob("*.log"))
                for line in path.read_text(errors="replace").splitlines()]
