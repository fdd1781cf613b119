"""Real recipients for the runs that drive the services as processes: shared packages whose order 1
opens with an access code and order 2 with an SMS OTP, the wait until the authentication service
has them, and the code the sandbox provider delivered to a phone."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import asyncpg

from signgate_contracts import Command
from signgate_contracts import workflow as wf
from signgate_contracts.envelope import Secret
from tests.support.waiting import until


def access_code(n: int) -> str:
    return f"AC-{n:04d}-restart"


def mobile(n: int) -> str:
    """Recipient ``n``'s phone: one per recipient, so the sandbox's last delivery to it is theirs."""
    return f"+447700{900000 + n}"


def shared_package(token: str, package_id: str, n: int, *,
                   retry_counts: tuple[int | None, int | None] = (None, None)) -> list[Command]:
    """Register, protect and share a package: order 1 opens with ``access_code(n)``, order 2 with an
    SMS OTP to ``mobile(n)``; each with its retry count (None: the default, 3)."""
    def retries(count: int | None) -> dict[str, int]:
        return {} if count is None else {"authenticationRetryCount": count}

    return [
        wf.RegisterPackage(package_id=package_id, name="Lease", access_token=token,
                           documents=[wf.DocumentSpec(document_id="doc-1", name="lease.pdf")],
                           recipients=[wf.RecipientSpec(order=1, email=f"a{n}@example.com", name="A"),
                                       wf.RecipientSpec(order=2, email=f"b{n}@example.com", name="B",
                                                        mobile_number=mobile(n))]),
        wf.AddAuthentication.model_validate({"package_id": package_id, "access_token": token, "body": {
            "authenticationType": "AccessCode", "accessCode": access_code(n), "emailId": f"a{n}@example.com",
            **retries(retry_counts[0])}}),
        wf.AddAuthentication.model_validate({"package_id": package_id, "access_token": token, "body": {
            "authenticationType": "SMSOTP", "emailId": f"b{n}@example.com",
            "phoneNumber": {"countryCode": "+44", "number": mobile(n)[3:]}, **retries(retry_counts[1])}}),
        wf.ShareWorkflow(package_id=package_id, access_token=token),
    ]


def invitations_in(reply: dict) -> dict[int, Secret]:
    """The invitations a `workflow.recipient_invitations_issued` reply holds, by order."""
    assert reply["type"] == "workflow.recipient_invitations_issued", reply
    return {item["order"]: Secret(item["invitation"]) for item in reply["invitations"]}


async def projected(database_url: str, package_ids: Iterable[str], *, timeout: float = 60.0) -> None:
    """Until the authentication service has projected both recipients of every shared package, with
    their methods (no message says so)."""
    ids = list(package_ids)

    async def ready() -> bool:
        connection = await asyncpg.connect(database_url, server_settings={"search_path": "authentication"})
        try:
            return await connection.fetchval(
                "SELECT count(*) FROM recipients r JOIN packages p USING (package_id)"
                " WHERE package_id = ANY($1) AND methods <> '{}' AND p.state = 'in_progress'", ids) == 2 * len(ids)
        finally:
            await connection.close()

    await until(ready, timeout=timeout, what="the authentication projection of every package")


def delivered_code(sandbox: Path, destination: str) -> str | None:
    """The code the sandbox provider last delivered to ``destination``, if any (a line being
    appended as we read is skipped)."""
    code = None
    if not sandbox.exists():
        return None
    for line in sandbox.read_text(encoding="utf-8").splitlines():
        try:
            delivery = json.loads(line)
        except ValueError:
            continue
        if delivery.get("destination") == destination:
            code = delivery["code"]
    return code
