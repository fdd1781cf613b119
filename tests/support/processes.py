"""Running a service as its own OS process, as `make run` does, so tests can kill it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from libs.runtime.settings import ConnectionSettings

ROOT = Path(__file__).resolve().parents[2]


def service_env(connections: ConnectionSettings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SIGNGATE_KAFKA_BOOTSTRAP=connections.kafka_bootstrap,
        SIGNGATE_KAFKA_IDEMPOTENCE=str(connections.kafka_idempotence).lower(),
        SIGNGATE_DATABASE_URL=connections.database_url,
        SIGNGATE_REDIS_URL=connections.redis_url,
        SIGNGATE_TOPIC_PREFIX=connections.topic_prefix,
        SIGNGATE_REDIS_PREFIX=connections.redis_prefix,
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


class ServiceProcess:
    """``faststream run <factory> --factory`` in a child process, logging to a file, its HTTP
    endpoint (/livez, /readyz, /metrics) on a free loopback port."""

    def __init__(self, factory: str, env: dict[str, str], log_path: Path) -> None:
        self.factory = factory
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "faststream", "run", self.factory, "--factory",
                 "--host", "127.0.0.1", "--port", "0"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no commits — a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
