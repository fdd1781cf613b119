"""SigningHub v3 over real HTTP: the seeds' requests, verbatim, to a gateway on the real stack."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from services.gateway.signinghub import SEED_000_BODY
from signgate_contracts import workflow as wf
from tests.e2e.steps import owner_token, workflow
from tests.support.gateway import RunningGateway
from tests.support.system import System

SEED_000_TEXT = json.dumps(SEED_000_BODY, indent=3)
"""Seed 000's body as the page prints it: sent as these bytes, not re-encoded by the client."""


def recipients() -> list[wf.RecipientSpec]:
    return [
        wf.RecipientSpec(order=1, email="ann@example.com", name="Ann", mobile_number="+447700900001"),
        wf.RecipientSpec(order=2, email="bob@example.com", name="Bob"),
    ]


async def draft(system: System, token: str) -> str:
    """A new package in draft, owned by the token's user."""
    package_id = f"pkg-{uuid.uuid4().hex[:8]}"
    await workflow(system, wf.RegisterPackage(
        package_id=package_id, name="Lease", access_token=token, recipients=recipients(),
        documents=[wf.DocumentSpec(document_id="doc-1", name="lease.pdf")],
    ))
    return package_id


@pytest.fixture(scope="module")
async def token(system: System) -> str:
    return await owner_token(system)


@pytest.fixture
async def http(gateway: RunningGateway):
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        yield client


async def test_seed_000_body_verbatim_updates_every_recipient_and_reads_back(
    system: System, token: str, http: httpx.AsyncClient
) -> None:
    """With passwords set, seed 000's PUT, its bytes verbatim (empty user_password: keep them),
    answers 200 with no body; the GET of each recipient then shows password authentication on and
    the seed's access window (apply_to_all)."""
    package_id = await draft(system, token)
    path = f"/v3/packages/{package_id}/workflow/1/authentication"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"}
    passwords = {"apply_to_all": True, "authentication": {"enabled": True, "password": {
        "enabled": True, "user_password": "Sesame-1"}}}
    assert (await http.put(path, json=passwords, headers=headers)).status_code == 200

    answer = await http.put(path, content=SEED_000_TEXT.encode(), headers=headers)

    assert (answer.status_code, answer.content) == (200, b"")
    for order in (1, 2):
        read = await http.get(f"/v3/packages/{package_id}/workflow/{order}/authentication", headers=headers)
        assert read.status_code == 200, read.text
        body = read.json()
        assert body["authentication"]["enabled"] is True
        assert body["authentication"]["password"] == {"enabled": True}
        assert body["authentication"]["sms_otp"]["enabled"] is False
        assert body["access_duration"]["enabled"] is True
        assert body["access_duration"]["duration_by_date"] == {
            "enabled": True,
            "duration": {"start_date_time": "2015-02-13T12:10:00Z", "end_date_time": "2015-02-28T12:10:00Z"},
        }
        assert body["access_duration"]["duration_by_days"]["enabled"] is False
