"""Redis, then Postgres, stopped and started again on the same port under the four running services.

The services run as processes (as in the crash-safety run) on stores of this test's own, so a
restart touches no other test; the broker is the session's. Commands flow before, during and after
each outage. Redis is stopped and started (the embedded one keeps nothing on disk, so it comes
back empty, as a lost Redis does); Postgres keeps its data directory.

What an outage does to a command: its handling fails transiently, is retried with backoff, and
if the store is still away the batch is delivered again, until the store is back and the command
is handled normally. So no command is answered 500 and none is dead-lettered because of an outage.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.devstack.dev_secrets import generate_secrets
from libs.devstack.embedded import EmbeddedStack, Server
from libs.runtime.redis_client import create_redis
from libs.runtime.settings import ConnectionSettings
from libs.security.tokens import TokenIssuer, TokenSettings
from libs.tools.provision import ProvisionSettings, provision
from services.registry import SERVICES
from signgate_contracts import authentication as auth
from signgate_contracts import identity as idn
from signgate_contracts import workflow as wf
from signgate_contracts.topics import OUTCOME_TOPIC
from tests.support.chaos_scale import LONG, report, scaled
from tests.support.chaos_supervisor import Supervisor, chaos_env
from tests.support.kafka import TopicWatcher, producer
from tests.support.recipients import access_code, delivered_code, mobile, projected, shared_package
from tests.support.scanning import bus_leaks, leaks
from tests.support.store_restarts import Ledger, all_failing, all_healthy
from tests.support.waiting import until
from tests.support.workflow_driver import User

pytestmark = pytest.mark.timeout(1800 if LONG else 240)

AUTHENTICATION = "signgate.authentication.commands"
IDENTITY = "signgate.identity.commands"
WORKFLOW = "signgate.workflow.commands"
USER_PASSWORD = "Restart-pass-7731"
USES = {"redis": ("identity", "authentication", "otp_dispatch"), "postgres": ("identity", "workflow", "authentication")}


@pytest.fixture
def store_dir() -> Iterator[Path]:
    """Outside pytest's temporary root: Postgres runs as its own user when we are root, and every
    pytest session that starts (others run beside this one) makes that root private again."""
    with tempfile.TemporaryDirectory(prefix="signgate-restarts-", ignore_cleanup_errors=True) as path:
        yield Path(path)


async def test_restarted_redis_comes_back_empty_and_postgres_with_its_rows(store_dir: Path) -> None:
    """A restarted embedded Redis is back on its old port holding nothing and the services' Redis
    client's very next command succeeds; a restarted Postgres holds every committed row."""
    with EmbeddedStack(store_dir, kafka=False) as stores:
        client = create_redis(stores.urls["redis"])
        await client.set("kept?", "no")
        stores.by_kind["redis"].restart()
        assert await client.get("kept?") is None  # no "Connection closed by server" first
        await client.aclose()

        import asyncpg
        connection = await asyncpg.connect(stores.urls["postgres"])
        await connection.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)")
        await connection.close()
        await asyncio.to_thread(stores.by_kind["postgres"].restart)
        connection = await asyncpg.connect(stores.urls["postgres"])
        assert await connection.fetchval("SELECT count(*) FROM kept") == 1
        await connection.close()


class Run:
    """One run's packages, users and checks; the ledger sends and counts."""

    def __init__(self, ledger: Ledger, secrets: dict[str, str], sandbox: Path, cycles: int) -> None:
        self.ledger = ledger
        self.sandbox = sandbox
        issuer = TokenIssuer.from_settings(TokenSettings(private_key=secrets["SIGNGATE_TOKEN_PRIVATE_KEY"],
                                                         public_key=secrets["SIGNGATE_TOKEN_PUBLIC_KEY"]))
        self.owner = User.new(issuer, "owner")
        self.admin = issuer.issue("operator:restarts", "operator:restarts", roles=["admin"]).token
        tag = uuid.uuid4().hex[:6]
        self.locked_user = f"locked-{tag}@example.com"
        self.good_user = f"good-{tag}@example.com"
        numbers = iter(range(1000))
        self.locked = [(f"rs-{tag}-lock-{i}", next(numbers)) for i in range(scaled(3, 10))]
        self.pending = [[(f"rs-{tag}-otp{c}-{i}", next(numbers)) for i in range(scaled(3, 5))] for c in range(cycles)]
        self.background = [(f"rs-{tag}-bg-{i}", next(numbers)) for i in range(scaled(6, 40))]
        self.drafts = 0
        self.tag = tag
        self.slices = 0
        self.outage_commands: list[str] = []

    async def setup(self) -> None:
        """Users and shared packages: order 1 opens with an access code, order 2 with an SMS OTP."""
        sent = await self.ledger.send(IDENTITY, "users", *(
            idn.RegisterUser(user_name=name, first_name="R", last_name="S", password=USER_PASSWORD,
                             access_token=self.admin, accounts=[idn.AccountMembership(
                                 name="Acme", context_identifier=uuid.uuid4(), is_primary=True)])
            for name in (self.locked_user, self.good_user)))
        packages = self.locked + [p for cycle in self.pending for p in cycle] + self.background
        for package_id, n in packages:
            sent += await self.ledger.send(WORKFLOW, package_id, *self._shared_package(package_id, n))
        await self.ledger.answered(sent, timeout=scaled(60, 300), what="the set-up's outcomes")
        refused = [self.ledger.outcome(c) for c in sent if self.ledger.outcome(c)["type"] == "command.rejected"]
        assert refused == []

    def _shared_package(self, package_id: str, n: int) -> list:
        return shared_package(self.owner.token, package_id, n)

    async def projected(self, database_url: str) -> None:
        """Until the authentication service has projected every shared package (no message says so)."""
        await projected(database_url, [p for p, _ in self.locked + [p for cycle in self.pending for p in cycle]
                                       + self.background])

    async def lock_out(self) -> tuple[list, list]:
        """Spend every locked package's access-code retries, and the locked user's five attempts."""
        wrong = []
        for package_id, _ in self.locked:
            wrong += await self.ledger.send(AUTHENTICATION, package_id, *(
                auth.OpenDocumentWithPassword(package_id=package_id, order=1, access_token=self.owner.token, password=f"wrong-{k}") for k in range(3)))
        user = await self.ledger.send(IDENTITY, self.locked_user, *(
            idn.AuthenticateUser(user_name=self.locked_user, password=f"Wrong-{k}") for k in range(5)))
        await self.ledger.answered(wrong + user, what="the lockouts")
        return wrong, user

    async def request_codes(self, cycle: int) -> list:
        sent = []
        for package_id, _ in self.pending[cycle]:
            sent += await self.ledger.send(AUTHENTICATION, package_id,
                                           auth.RequestDocumentOtp(package_id=package_id, order=2, access_token=self.owner.token))
        await self.ledger.answered(sent, what="the OTP requests")
        return sent

    def code(self, n: int) -> str:
        code = delivered_code(self.sandbox, mobile(n))
        assert code is not None, f"no code delivered to recipient {n}"
        return code

    async def verify(self, cycle: int, codes: dict[str, str]) -> list:
        sent = []
        for package_id, _ in self.pending[cycle]:
            sent += await self.ledger.send(AUTHENTICATION, package_id, auth.VerifyDocumentOtp(package_id=package_id, order=2, access_token=self.owner.token, code=codes[package_id]))
        await self.ledger.answered(sent, what="the OTP verifications")
        return sent

    async def still_locked(self) -> tuple[list, list]:
        """The right secrets of every locked recipient and of the locked user."""
        right = []
        for package_id, n in self.locked:
            right += await self.ledger.send(AUTHENTICATION, package_id, auth.OpenDocumentWithPassword(package_id=package_id, order=1, access_token=self.owner.token, password=access_code(n)))
        user = await self.ledger.send(IDENTITY, self.locked_user,
                                      idn.AuthenticateUser(user_name=self.locked_user, password=USER_PASSWORD))
        await self.ledger.answered(right + user, what="the locked ones' answers")
        return right, user

    async def slice(self) -> list:
        """Background traffic touching Postgres, Redis or both: guesses, code requests, logins, drafts."""
        self.slices += 1
        sent = []
        for package_id, n in self.background:  # a wrong guess, then the right code (which clears the count)
            sent += await self.ledger.send(AUTHENTICATION, package_id,
                                           auth.OpenDocumentWithPassword(package_id=package_id, order=1, access_token=self.owner.token,
                                                                         password=f"guess-{self.slices}"),
                                           auth.OpenDocumentWithPassword(package_id=package_id, order=1, access_token=self.owner.token,
                                                                         password=access_code(n)),
                                           auth.RequestDocumentOtp(package_id=package_id, order=2, access_token=self.owner.token),
                                           auth.VerifyDocumentOtp(package_id=package_id, order=2, access_token=self.owner.token,
                                                                  code=f"{self.slices:06d}"))
        sent += await self.ledger.send(IDENTITY, self.good_user,
                                       idn.AuthenticateUser(user_name=self.good_user, password=USER_PASSWORD))
        stranger = f"nobody-{uuid.uuid4().hex[:6]}@example.com"
        sent += await self.ledger.send(IDENTITY, stranger, idn.AuthenticateUser(user_name=stranger, password="Nope-1"))
        for _ in range(scaled(4, 40)):
            self.drafts += 1
            package_id = f"rs-{self.tag}-draft-{self.drafts}"
            sent += await self.ledger.send(WORKFLOW, package_id, wf.RegisterPackage(
                package_id=package_id, name="Draft", access_token=self.owner.token,
                documents=[wf.DocumentSpec(document_id="d", name="d.pdf")],
                recipients=[wf.RecipientSpec(order=1, email="d@example.com", name="D")]))
        return sent


async def outage(server: Server, supervisor: Supervisor, kind: str, run: Run) -> tuple[float, list[str]]:
    """Stop ``server``; once every service using it reports it failing, send a slice of commands and
    wait until a service has hit the dead store; start it again on the same port. Returns how long
    it was down and the commands it may have touched: those in flight when it stopped, and the slice."""
    users = [supervisor.processes[name] for name in USES[kind]]
    logged_before = len(supervisor.logged())
    in_flight = [c for c in run.ledger.owed if not run.ledger.outcomes(c)]
    down = time.monotonic()
    await asyncio.to_thread(server.stop)
    await until(lambda: all_failing(users, kind), timeout=30, what=f"every {kind} user's /health failing")
    sent = in_flight + [str(c.correlation_id) for c in await run.slice()]
    await until(lambda: asyncio.to_thread(_hit_the_outage, supervisor, logged_before), timeout=30,
                what=f"a service handling a record hitting the stopped {kind}")
    server.start()
    await asyncio.to_thread(server.wait_until_ready)
    return time.monotonic() - down, sent


def _hit_the_outage(supervisor: Supervisor, logged_before: int) -> bool:
    """A service logged a failure while handling a record (the relay's and the pool's own
    complaints name no topic)."""
    return any('"topic": "' in line and ('"level": "warning"' in line or '"level": "error"' in line)
               for line in supervisor.logged()[logged_before:])


async def test_services_ride_out_redis_and_postgres_restarts(connections: ConnectionSettings, tmp_path: Path,
                                                              store_dir: Path) -> None:
    """While Redis and then Postgres are restarted under the running services, every command gets
    exactly one outcome, no service is restarted, a lockout from before stays, and an OTP sent before
    the Redis restart no longer opens the document."""
    cycles = scaled(1, 10)
    started = time.monotonic()
    stores = EmbeddedStack(store_dir, kafka=False)
    stores.start()
    try:
        connections = connections.model_copy(update={
            "database_url": stores.urls["postgres"], "redis_url": stores.urls["redis"],
            "topic_prefix": f"{connections.topic_prefix}restarts."})
        await provision(ProvisionSettings(connections=connections), SERVICES)
        secrets = generate_secrets()
        sandbox = tmp_path / "sandbox.jsonl"
        (tmp_path / "logs").mkdir()
        supervisor = Supervisor(chaos_env(connections, secrets, sandbox), tmp_path / "logs")
        topics = [connections.topic(t.name) for t in OUTCOME_TOPIC.values()]
        topics += [connections.topic(f"{name}.dlq") for name in (*OUTCOME_TOPIC, "signgate.otp.events",
                                                                  "signgate.workflow.events")]
        async with TopicWatcher(connections.kafka_bootstrap, *topics) as watch, \
                producer(connections.kafka_bootstrap) as client:
            supervisor.start()
            try:
                figures = await _drive(Run(Ledger(connections, client, watch), secrets, sandbox, cycles),
                                       stores, supervisor, connections, cycles)
            finally:
                supervisor.stop()
            records = [(r.topic, r.value.decode(errors="replace")) for r in watch.records]
    finally:
        stores.stop()

    run, ledger, pids, during = (figures.pop(k) for k in ("run", "ledger", "pids", "during"))
    lost, twice = ledger.tally()
    assert lost == []
    assert twice == [], {c: ledger.outcomes(c) for c in twice}
    # A command handled while a store is away waits for it (its batch is delivered again): none is
    # answered 500 because of an outage.
    failed = {c for c in ledger.owed if any(b.get("code") == "internal_error" for b in ledger.outcomes(c))}
    assert failed == set(), [ledger.outcomes(c) for c in failed]
    assert pids == {name: p.process.pid for name, p in supervisor.processes.items()}
    assert supervisor.restarts == 0 and not supervisor.kills
    codes = [json.loads(line)["code"] for line in sandbox.read_text().splitlines()]
    secret_values = [*codes, USER_PASSWORD, run.owner.token, run.admin, *secrets.values(),
                     *(access_code(n) for _, n in run.locked + run.background)]
    found = leaks([text for _, text in records] + supervisor.logged(), secret_values)
    assert found == []
    assert bus_leaks(watch.records, connections) == []  # no hash, contact or credential where it must not be
    endings = Counter(f"{b['type']}{' ' + b['code'] if b['type'] == 'command.rejected' else ''}"
                      for c in ledger.owed for b in ledger.outcomes(c))
    letters = [json.loads(text) for topic, text in records if topic.endswith(".dlq")]
    dead = Counter(letter["reason"] for letter in letters)
    # no command is dead-lettered because a store was away
    superseded = sum(1 for letter in letters if (letter["payload"] or {}).get("correlation_id") in ledger.owed)
    assert superseded == 0, dead
    report("store restarts", commands_sent=len(ledger.owed), outcomes_received=len(ledger.owed) - len(lost),
           lost=len(lost), answered_twice=len(twice), republished=ledger.republished,
           redis_restarts=cycles, postgres_restarts=cycles, services_restarted=supervisor.restarts,
           sent_during_outages={k: len(v) for k, v in during.items()},
           answered_500=len(failed),
           endings=dict(sorted(endings.items())), dead_letters=dict(dead),
           dead_letters_of_commands_then_handled=superseded, secrets_found=len(found),
           otp_codes_scanned_for=len(codes), seconds=round(time.monotonic() - started, 1), **figures)


async def _drive(run: Run, stores: EmbeddedStack, supervisor: Supervisor, connections: ConnectionSettings,
                 cycles: int) -> dict:
    ledger = run.ledger
    processes = list(supervisor.processes.values())
    await until(lambda: all_healthy(processes), timeout=60, what="every service healthy")
    pids = {name: p.process.pid for name, p in supervisor.processes.items()}
    await run.setup()
    await run.projected(connections.database_url)
    wrong, user_wrong = await run.lock_out()
    assert [ledger.outcome(c)["type"] for c in wrong] == [
        "authentication.recipient_authentication_failed", "authentication.recipient_authentication_failed",
        "authentication.recipient_locked_out"] * len(run.locked)

    async def lockouts() -> list[str]:
        """The user's lockout is keyed by their id, the failure that caused it by the name's digest: it
        is in another partition, and may come after the outcomes."""
        ledger.outcomes(user_wrong[-1])  # reads what was seen since
        caused = [b["type"] for c in user_wrong for b in ledger.seen[str(c.correlation_id)].values()]
        return [t for t in caused if t == "identity.user_locked_out_v2"]

    await until(lockouts, what="the user's lockout")
    assert len(await lockouts()) == 1
    redis = create_redis(connections.redis_url)
    downtime: dict[str, list[float]] = {"redis": [], "postgres": []}
    during: dict[str, list[str]] = {"redis": [], "postgres": []}
    try:
        for cycle in range(cycles):
            await run.request_codes(cycle)
            codes = {package_id: run.code(n) for package_id, n in run.pending[cycle]}
            await run.slice()
            await redis.set("restarts:sentinel", "1")
            seconds, sent = await outage(stores.by_kind["redis"], supervisor, "redis", run)
            downtime["redis"].append(round(seconds, 2))
            during["redis"] += sent
            assert await redis.exists("restarts:sentinel") == 0, "the embedded Redis kept data across a restart"
            await until(lambda: all_healthy(processes), timeout=60, what="every service healthy after Redis came back")

            stale = await run.verify(cycle, codes)
            right, user_right = await run.still_locked()
            await run.slice()
            assert [(ledger.outcome(c)["type"], ledger.outcome(c)["reason"]) for c in stale] == [
                ("authentication.recipient_authentication_failed", "no_pending_code")] * len(stale)
            _assert_locked(ledger, right, user_right)

            seconds, sent = await outage(stores.by_kind["postgres"], supervisor, "postgres", run)
            downtime["postgres"].append(round(seconds, 2))
            during["postgres"] += sent
            await until(lambda: all_healthy(processes), timeout=60,
                        what="every service healthy after Postgres came back")
            right, user_right = await run.still_locked()
            _assert_locked(ledger, right, user_right)
            await run.request_codes(cycle)
            fresh = await run.verify(cycle, {package_id: run.code(n) for package_id, n in run.pending[cycle]})
            assert [ledger.outcome(c)["type"] for c in fresh] == ["authentication.recipient_authenticated"] * len(fresh)
            await run.slice()
    finally:
        await redis.aclose()
    await ledger.answered(timeout=scaled(90, 600))
    exited = {name: p.process.returncode for name, p in supervisor.processes.items() if p.process.poll() is not None}
    assert exited == {}, f"services exited: {exited}"
    return {"run": run, "ledger": ledger, "pids": pids, "during": during, "downtime_seconds": downtime,
            "slices": run.slices}


def _assert_locked(ledger: Ledger, right: list, user_right: list) -> None:
    assert [(ledger.outcome(c).get("status"), ledger.outcome(c).get("code")) for c in right] == [
        (403, "recipient_locked")] * len(right)
    [answer] = [ledger.outcome(c) for c in user_right]
    assert answer["type"] == "identity.user_authentication_failed_v2", answer
    assert "locked" in json.dumps(answer["reasons"]), answer
