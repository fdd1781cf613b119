"""`make run`'s runner, as a user runs it: up, answering a first command, and gone after Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.kafka import TopicWatcher, producer
from tests.support.processes import ROOT
from tests.support.waiting import until


async def wait_for_file(path: Path, process: subprocess.Popen, timeout: float) -> dict:
    """The runner's stack file, once written; fails at once if the runner exits instead."""

    async def written() -> dict | None:
        if process.poll() is not None:
            raise AssertionError(f"runner exited with {process.returncode}")
        return json.loads(path.read_text()) if path.exists() and path.read_text().strip() else None

    return await until(written, timeout=timeout, what=f"{path} being written")


@pytest.fixture
def runner(tmp_path: Path):
    """`python -m libs.devstack.runner` in a session of its own, as a terminal's foreground job would be."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNGATE_")}
    env["SIGNGATE_DATA_DIR"] = str(tmp_path / "data")
    log = (tmp_path / "run.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "libs.devstack.runner"], cwd=ROOT, env=env,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    yield process, tmp_path
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    log.close()


async def gateway_answer(url: str) -> httpx.Response | None:
    """SigningHub's PUT without a token, once the gateway is ready (None before)."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        try:
            if (await http.get("/readyz")).status_code != 200:
                return None
        except httpx.TransportError:
            return None
        return await http.put("/v3/packages/pkg-first/workflow/1/authentication", json={})


async def test_runner_answers_a_first_command_and_ctrl_c_leaves_nothing_running(runner) -> None:
    """The whole system comes up on the embedded stack, answers a plain producer's command on the
    service's event topic and a SigningHub request at the gateway URL of its stack file, and after
    Ctrl-C no process it started is left."""
    process, tmp_path = runner
    started = time.monotonic()
    stack = await wait_for_file(tmp_path / "data" / "stack.json", process, timeout=60)
    correlation_id = str(uuid.uuid4())

    async with TopicWatcher(stack["kafka_bootstrap"], "signgate.identity.events") as watch:
        async with producer(stack["kafka_bootstrap"]) as client:
            body = {"type": "identity.no_such_command", "correlation_id": correlation_id}
            await client.send_and_wait("signgate.identity.commands", json.dumps(body).encode(), key=b"first")
        outcome = await watch.outcome(correlation_id, timeout=60)
    up_in = time.monotonic() - started
    refused = await until(lambda: gateway_answer(stack["gateway_url"]), timeout=60, what="the gateway answering")
    descendants = psutil.Process(process.pid).children(recursive=True)
    names = {p.name() for p in descendants}

    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
    process.wait(60)
    gone, alive = psutil.wait_procs(descendants, timeout=20)

    assert outcome["type"] == "command.rejected" and outcome["status"] == 400
    assert (refused.status_code, refused.json()) == (401, {"Message": "User authentication required"})
    print(f"make run answered its first command {up_in:.1f} s after it started")  # a figure, not a check
    assert {"redis-server", "postgres"} <= names and any(n.startswith("tansu") for n in names), names
    assert not alive, [p.cmdline() for p in alive]
    assert not (tmp_path / "data" / "stack.json").exists()
