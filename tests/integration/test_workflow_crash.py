"""The workflow service as its own process, killed in the middle of a burst and started again."""

from __future__ import annotations

from pathlib import Path

from libs.runtime.settings import ConnectionSettings
from libs.tools.topics_admin import create_topics
from tests.support.processes import service_env
from tests.support.workflow_burst import (
    generate,
    new_prefix,
    outcome_types,
    reference,
    stored_against_reference,
)
from tests.support.workflow_driver import Keys, User, WorkflowProcess, workflow_client


async def test_process_killed_mid_burst_loses_no_command_and_applies_none_twice(
    provisioned: ConnectionSettings, tmp_path: Path
) -> None:
    """SIGKILLed mid-burst and restarted, the service gives every command exactly one outcome and
    ends with the state and history (no entry twice) that applying them one by one gives."""
    connections = provisioned.model_copy(update={"topic_prefix": f"{provisioned.topic_prefix}wfcrash."})
    await create_topics(connections)
    keys = Keys()
    issuer = keys.issuer()
    burst = generate(User.new(issuer, "owner"), User.new(issuer, "stranger"), packages=25, per_package=20,
                     seed=11, prefix=new_prefix("crash"))
    expected = reference(burst)
    env = service_env(connections, **keys.env(), SIGNGATE_WORKFLOW_SESSION_TIMEOUT_MS="3000",
                      SIGNGATE_WORKFLOW_HEARTBEAT_INTERVAL_MS="500")

    async with workflow_client(connections) as client:
        first = WorkflowProcess(env, tmp_path / "first.log").start()
        try:
            await client.publish(burst.commands)
            await client.watcher.wait_count(60, timeout=60)
            first.kill()
            answered_before_the_kill = len(client.watcher.by_correlation)
            second = WorkflowProcess(env, tmp_path / "second.log").start()
            try:
                await client.watcher.wait_all(expected.outcomes, timeout=90)
                for correlation_id, types in expected.outcomes.items():
                    if len(types) > 1:
                        await client.watcher.wait_outcomes(correlation_id, len(types))
            finally:
                second.stop()
        finally:
            first.stop()
        outcomes = {cid: outcome_types(client.watcher.outcomes(cid)) for cid in expected.outcomes}

    assert answered_before_the_kill < len(burst.commands), "the kill came after the burst was done"
    assert outcomes == expected.outcomes
    histories, applied_twice = await stored_against_reference(connections.database_url, expected, burst)
    for package_id, history in histories.items():
        assert [(h.action, h.order, h.details) for h in history] == expected.history.get(package_id, [])
        assert [h.sequence for h in history] == list(range(1, len(history) + 1))
    assert applied_twice == 0
