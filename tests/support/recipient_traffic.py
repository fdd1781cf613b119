"""Scripted authentication traffic of real recipients, and the reference it is checked against.

Each package has two recipients (`tests.support.recipients.shared_package`): order 1 opens with an
access code, order 2 with an SMS OTP, each with a retry count of 1-4. A script says, per recipient,
what they try in turn: a wrong or the right access code; an OTP request, the last code delivered
(read from the sandbox outbox), that code once more, or a wrong one. Scripts are written so that
some recipients lock themselves out and then keep trying.

Every attempt carries the package owner's token, the other credential a recipient command may
carry (the signing-link invitation is exercised by the end-to-end and security tests): these runs
are about crash safety, and the token is the one credential the ledger's commands can be given
before the run.

A package's commands are handled in order (one key), so the reference applies each recipient's
attempts one by one. Only one thing is not decided by the commands: whether an OTP request's
delivery went through (a kill between the provider's send and its record makes the code withdrawn:
`otp_delivery_failed`). The driver waits for every request's outcome before the package's next
command, so the reference takes that outcome as given and decides everything after it.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signgate_contracts import Command
from signgate_contracts import authentication as auth
from tests.support.recipients import access_code, delivered_code, mobile, projected, shared_package
from tests.support.store_restarts import Ledger

AUTHENTICATION = "signgate.authentication.commands"
WORKFLOW = "signgate.workflow.commands"
LOCKED = ("command.rejected", "recipient_locked", None)
SENT = ("authentication.document_otp_sent", None, None)
UNDELIVERED = ("command.rejected", "otp_delivery_failed", None)

Outcome = tuple[str, str | None, int | None]
"""(type, reason / rejection code / method, failures used), as compared with the reference."""


@dataclass
class Attempt:
    step: str
    """``right`` / ``wrong`` (a secret or a code), ``again`` (the code last submitted as right), ``request``."""
    command: Command
    code: str | None = None
    """The OTP submitted, or for a request that went through, the code it delivered."""


@dataclass
class Recipient:
    package_id: str
    order: int
    n: int
    retry_count: int
    steps: list[str]
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def method(self) -> str:
        return "access_code" if self.order == 1 else "sms_otp"


def outcome_of(body: dict[str, Any]) -> Outcome:
    kind = body["type"]
    if kind == "command.rejected":
        return kind, body["code"], None
    if kind == "authentication.recipient_authentication_failed":
        return kind, body["reason"], body["attempts_used"]
    if kind == "authentication.recipient_locked_out":
        return kind, None, body["failures"]
    if kind == "authentication.recipient_authenticated":
        return kind, body["method"], None
    return kind, None, None


def expected_outcomes(recipient: Recipient, observed: list[Outcome | None]) -> list[Outcome]:
    """What the service must answer to each attempt, applied in order; an OTP request's own
    outcome (delivered or not) is taken from ``observed``."""
    failures, locked, pending = 0, False, None
    expected: list[Outcome] = []

    def fail() -> Outcome:
        nonlocal failures, locked, pending
        failures += 1
        if failures >= recipient.retry_count:
            locked, pending = True, None
            return "authentication.recipient_locked_out", None, failures
        return "authentication.recipient_authentication_failed", "wrong_secret", failures

    for attempt, seen in zip(recipient.attempts, observed, strict=True):
        if locked:
            expected.append(LOCKED)
        elif attempt.step == "request":
            expected.append(seen if seen in (SENT, UNDELIVERED) else SENT)
            if seen == SENT:
                pending = attempt.code
            elif seen == UNDELIVERED:
                pending = None
        elif recipient.method == "access_code":
            if attempt.step == "right":
                failures = 0
                expected.append(("authentication.recipient_authenticated", "access_code", None))
            else:
                expected.append(fail())
        elif pending is None:
            expected.append(("authentication.recipient_authentication_failed", "no_pending_code", failures))
        elif attempt.code == pending:
            failures, pending = 0, None
            expected.append(("authentication.recipient_authenticated", "sms_otp", None))
        else:
            expected.append(fail())
    return expected


def _secret_steps(rng: random.Random, retries: int) -> list[str]:
    match rng.choice(["lock", "lock", "recover", "random"]):
        case "lock":  # spent, then the right code and a wrong one: both refused
            return ["wrong"] * retries + rng.sample(["right", "wrong"], 2)
        case "recover":  # one short of the lock, the right code (the count starts again), again
            return (["wrong"] * (retries - 1) + ["right"]) * 2
        case _:
            return rng.choices(["wrong", "right"], weights=[2, 1], k=5)


def _otp_steps(rng: random.Random, retries: int) -> list[str]:
    match rng.choice(["lock", "lock", "recover", "random"]):
        case "lock":  # spent, then a new code asked for and the last one tried: both refused
            return ["request"] + ["wrong"] * retries + ["request", "right"]
        case "recover":  # a used code does not open twice; a new code does
            return ["request"] + ["wrong"] * (retries - 1) + ["right", "again", "request", "right"]
        case _:
            steps = ["request"]
            for _ in range(5):
                steps.append(rng.choices(["wrong", "right", "again", "request"], weights=[3, 2, 1, 1])[0])
                if steps.count("request") == 3:  # the per-recipient send limit is 5 a day
                    steps[-1] = "wrong"
            return steps


class RecipientTraffic:
    """Real recipients' attempts, sent through a `Ledger` while the services are being killed."""

    def __init__(self, ledger: Ledger, owner_token: str, sandbox: Path, rng: random.Random, *,
                 packages: int, prefix: str, first: int) -> None:
        """``first``: the first recipient number (`mobile`, `access_code`), distinct from any
        other phone the run sends codes to."""
        self.ledger = ledger
        self.owner_token = owner_token
        self.sandbox = sandbox
        self.rng = rng
        self.packages: dict[str, list[Recipient]] = {}
        self.scripts: dict[str, list[Recipient]] = {}
        for index in range(packages):
            package_id, n = f"{prefix}-{index:03d}", first + index
            retries = (rng.choice([1, 2, 3, 4]), rng.choice([1, 2, 3, 4]))
            self.packages[package_id] = [
                Recipient(package_id, 1, n, retries[0], _secret_steps(rng, retries[0])),
                Recipient(package_id, 2, n, retries[1], _otp_steps(rng, retries[1])),
            ]
        self.setup: list[Command] = []

    @property
    def recipients(self) -> list[Recipient]:
        return [r for pair in self.packages.values() for r in pair]

    def secrets(self) -> list[str]:
        return [access_code(r.n) for r in self.recipients if r.order == 1] + [self.owner_token]

    async def prepare(self, database_url: str, *, timeout: float) -> None:
        """Register, protect and share every package; wait until authentication has the recipients."""
        for package_id, (one, two) in self.packages.items():
            self.setup += await self.ledger.send(WORKFLOW, package_id, *shared_package(
                self.owner_token, package_id, one.n, retry_counts=(one.retry_count, two.retry_count)))
        await self.ledger.answered(self.setup, timeout=timeout, what="the recipients' set-up")
        refused = [self.ledger.outcome(c) for c in self.setup if self.ledger.outcome(c)["type"] == "command.rejected"]
        assert refused == []
        await projected(database_url, self.packages, timeout=timeout)

    async def run(self, *, spread: float, pause: float, timeout: float) -> None:
        """Every package's script in a task of its own, starting at a random point of ``spread``
        seconds, with up to ``pause`` seconds between two commands."""
        async with asyncio.TaskGroup() as group:
            for package_id, pair in self.packages.items():
                group.create_task(self._script(package_id, pair, self.rng.uniform(0, spread),
                                               random.Random(self.rng.random()), pause, timeout))

    async def _script(self, package_id: str, pair: list[Recipient], start: float, rng: random.Random,
                      pause: float, timeout: float) -> None:
        await asyncio.sleep(start)  # staggered starts: the traffic spans the kill schedule (load pacing)
        queues = [(recipient, list(recipient.steps)) for recipient in pair]
        while any(steps for _, steps in queues):
            recipient, steps = rng.choice([q for q in queues if q[1]])
            attempt = self._attempt(recipient, steps.pop(0))
            recipient.attempts.append(attempt)
            await self.ledger.send(AUTHENTICATION, package_id, attempt.command)
            if attempt.step == "request":  # its code, if delivered, is what the next "right" submits
                await self.ledger.answered([attempt.command], timeout=timeout,
                                           what=f"the outcome of an OTP request of {package_id}")
                if self.ledger.outcome(attempt.command)["type"] == SENT[0]:
                    attempt.code = delivered_code(self.sandbox, mobile(recipient.n))
            await asyncio.sleep(rng.uniform(0, pause))  # the pace of one signer, not a synchronisation

    def _attempt(self, recipient: Recipient, step: str) -> Attempt:
        package_id = recipient.package_id
        if recipient.method == "access_code":
            secret = access_code(recipient.n) if step == "right" else f"wrong-{self.rng.randrange(10**6)}"
            return Attempt(step, auth.OpenDocumentWithPassword(package_id=package_id, order=1, access_token=self.owner_token, password=secret))
        if step == "request":
            return Attempt(step, auth.RequestDocumentOtp(package_id=package_id, order=2, access_token=self.owner_token))
        delivered = delivered_code(self.sandbox, mobile(recipient.n))
        if step == "again":
            code = next((a.code for a in reversed(recipient.attempts) if a.step == "right"), delivered)
        elif step == "right":
            code = delivered
        else:
            code = delivered
            while code == delivered:
                code = f"{self.rng.randrange(10**6):06d}"
        code = code or "000000"  # nothing delivered yet: no code is pending either
        return Attempt(step, auth.VerifyDocumentOtp(package_id=package_id, order=2, access_token=self.owner_token, code=code), code)

    def check(self) -> dict[str, Any]:
        """Compare every recipient's answers with the reference and the lockout rules; returns the
        figures, or fails with every difference."""
        differences, violations = [], []
        lockouts, before_lock, accepted_codes = Counter(), {}, Counter()
        figures: Counter[str] = Counter()
        for recipient in self.recipients:
            name = f"{recipient.package_id}#{recipient.order} (retries {recipient.retry_count})"
            answers = [self.ledger.outcomes(a.command) for a in recipient.attempts]
            observed = [outcome_of(a[0]) if len(a) == 1 else None for a in answers]
            expected = expected_outcomes(recipient, observed)
            if observed != expected:
                differences.append((name, [a.step for a in recipient.attempts], observed, expected))
            streak, locked = 0, False
            for attempt, outcome in zip(recipient.attempts, observed, strict=True):
                kind, detail, used = outcome or ("lost", None, None)
                if locked and outcome != LOCKED:
                    violations.append((name, "answered after the lock", attempt.step, outcome))
                if kind == "authentication.recipient_locked_out":
                    lockouts[name] += 1
                    locked = True
                    before_lock[name] = streak
                    if streak + 1 > recipient.retry_count or (used or 0) > recipient.retry_count:
                        violations.append((name, "more failures than the retry count", streak + 1, used))
                elif kind == "authentication.recipient_authentication_failed" and detail == "wrong_secret":
                    streak += 1
                elif kind == "authentication.recipient_authenticated":
                    streak = 0
                    if attempt.code is not None:
                        accepted_codes[(name, attempt.code)] += 1
                    figures[f"accepted {detail}"] += 1
                if detail == "recipient_not_found":
                    violations.append((name, "recipient not found", attempt.step, outcome))
                figures[f"{attempt.step} {recipient.method} -> {kind}{' ' + detail if detail else ''}"] += 1
            if lockouts[name] > 1:
                violations.append((name, "locked out more than once", lockouts[name]))
        twice = {code: n for code, n in accepted_codes.items() if n > 1}
        assert twice == {}, f"OTP codes accepted more than once: {len(twice)}"
        assert violations == [], violations[:20]
        assert differences == [], (len(differences), differences[:10])
        spent = defaultdict(list)
        for recipient in self.recipients:
            name = f"{recipient.package_id}#{recipient.order} (retries {recipient.retry_count})"
            if name in before_lock:
                spent[recipient.retry_count].append(before_lock[name] + 1)
        return {
            "recipients": len(self.recipients),
            "authentication_commands": sum(len(r.attempts) for r in self.recipients),
            "locked_out": len(lockouts),
            "lockouts_by_retry_count": {k: f"{len(v)} locked after {sorted(set(v))} failures"
                                        for k, v in sorted(spent.items())},
            "otp_codes_accepted": sum(accepted_codes.values()),
            "otp_codes_accepted_twice": len(twice),
            "answers": dict(sorted(figures.items())),
        }
