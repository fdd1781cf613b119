"""The workflow service on a real broker and Postgres: a burst of mixed commands, published at once
and keyed by package, is applied in order per package, as applying them one by one would.

The service's rules (seed bodies and errors, lifecycle, queries, history, unlocking one recipient,
facts applied in order within a batch) are tested without a broker in tests/component/test_workflow.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from libs.runtime.service import Service, build_service
from libs.runtime.settings import ConnectionSettings
from libs.security.tokens import TokenIssuer
from services.workflow import repository
from services.workflow.app import DEFINITION
from tests.support.workflow_burst import comparable, generate, new_prefix, outcome_types, reference
from tests.support.workflow_driver import Keys, User, WorkflowClient, workflow_client


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def issuer(keys: Keys) -> TokenIssuer:
    return keys.issuer()


@pytest.fixture(scope="module")
async def workflow(provisioned: ConnectionSettings, keys: Keys) -> AsyncIterator[Service]:
    service = build_service(DEFINITION, keys.settings(provisioned))
    async with service.app:
        yield service


@pytest.fixture(scope="module")
async def client(provisioned: ConnectionSettings, workflow: Service) -> AsyncIterator[WorkflowClient]:
    async with workflow_client(provisioned) as client:
        yield client


async def test_burst_of_mixed_commands_ends_as_applying_them_one_by_one(
    workflow: Service, client: WorkflowClient, issuer: TokenIssuer
) -> None:
    """1,000 mixed commands over 50 packages published in one burst give each command the outcome,
    and each package the state and history, that applying them one at a time gives."""
    owner, stranger = User.new(issuer, "owner"), User.new(issuer, "stranger")
    prefix = new_prefix("burst")
    burst = generate(owner, stranger, packages=50, per_package=20, seed=4, prefix=prefix)
    expected = reference(burst)
    assert len(burst.commands) == 1000

    await client.publish(burst.commands)
    await client.watcher.wait_all(expected.outcomes, timeout=120)
    for correlation_id, types in expected.outcomes.items():
        if len(types) > 1:
            await client.watcher.wait_outcomes(correlation_id, len(types))

    outcomes = {cid: outcome_types(client.watcher.outcomes(cid)) for cid in expected.outcomes}
    assert outcomes == expected.outcomes
    assert workflow.resources.pool is not None
    async with workflow.resources.pool.acquire() as connection:
        for package_id, package in expected.packages.items():
            assert comparable(await repository.select_package(connection, package_id)) == comparable(package)
            actual_history = [(h.action, h.order, h.details)
                              for h in await repository.select_history(connection, package_id)]
            assert actual_history == expected.history.get(package_id, [])
    accepted_count = sum(1 for types in expected.outcomes.values() if not types[0].startswith("command.rejected"))
    assert accepted_count > 400, "the burst should change packages, not only be refused"
