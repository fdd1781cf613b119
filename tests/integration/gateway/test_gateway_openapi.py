"""The gateway's OpenAPI document, tried property by property (schemathesis) against the live server."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.gateway import RunningGateway

EXAMPLES = 4
"""Generated requests per operation (and the documented examples): the short form of `make test`."""
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def fuzz(document: dict[str, Any], base_url: str, headers: dict[str, str]) -> list[str]:
    """Every operation's examples and generated requests, derandomized; the failures found."""
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @hypothesis.settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                             phases=[Phase.explicit, Phase.generate],
                             suppress_health_check=list(HealthCheck))
        @hypothesis.given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=30)

        try:
            run()
        except Exception as error:  # a failed check: collected, to report every operation's
            failures.append(f"{operation.label}: {error}")
    return failures


# schemathesis 4.32's own strategies draw from `random` (Hypothesis seeds it per example, so runs repeat)
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
async def test_generated_requests_get_no_500_and_no_answer_outside_the_document(
    gateway: RunningGateway, token: str
) -> None:
    """Requests generated from the served OpenAPI document (each operation's examples and a few
    generated ones, the same every run) are never answered 5xx, nor with a status, content type
    or body the document does not describe."""
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        document = (await http.get("/openapi.json")).json()
    assert {"/v3/packages/{package_id}/workflow/{order}/authentication"} <= document["paths"].keys()

    # schemathesis calls are blocking: off the loop, which serves the gateway meanwhile
    failures = await asyncio.to_thread(fuzz, document, gateway.url, {"Authorization": f"Bearer {token}"})

    assert failures == []
