"""The bench run: the stack, the services as processes, prepared data, each scenario, the report.

``python -m libs.tools.bench [--replicas N] [--quick]`` (``make bench``) starts the embedded stack
(or uses the servers ``SIGNGATE_*`` URLs name) under a fresh topic and key prefix, runs the
four services as their own processes (``faststream run``, as ``make run`` does), and drives
every scenario with the load generator in a separate process. For the gateway's figures it runs
the gateway too (``uvicorn``, as ``make run`` does) and sends the same OTP verification over HTTP
and over Kafka at one offered rate, in alternating rounds of one run (`libs.tools.bench.paths`).

Recipients are prepared through the authentication service's own projection handlers (the
code that applies workflow's facts), and their shared packages through the workflow service's
repository, called here in bulk so that preparing tens of thousands of recipients does not take
minutes; their OTP challenges are issued through the real OTP store with a known code. The
measured path, command in to outcome out, is untouched, and the workflow service records every
authentication fact in its package's history, as in a deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from pydantic import SecretStr

from libs.devstack.dev_secrets import generate_secrets
from libs.devstack.embedded import free_port
from libs.devstack.stack import DATA_DIR, ROOT, open_stack, uses_embedded_broker
from libs.runtime.kafka_security import security_environment
from libs.runtime.postgres import create_pool
from libs.runtime.redis_client import RedisClient, open_redis
from libs.runtime.service import Scope
from libs.runtime.settings import ConnectionSettings
from libs.security.digests import Digests
from libs.security.invitations import InvitationIssuer, InvitationSettings, InvitationVerifier
from libs.security.otp_store import OtpRecipient, OtpStore, SendLimits
from libs.security.record_signatures import (
    PUBLIC_KEYS_VARIABLE,
    RecordSigner,
    RecordVerifier,
    signing_key_variable,
)
from libs.security.sealing import Opener, Sealer, private_keys_variable, public_keys_of
from libs.security.secrets import SecretHasher, SecretSettings
from libs.security.tokens import TokenIssuer
from libs.tools.bench import cpu
from libs.tools.bench.report import Report, Row, by_role
from libs.tools.bench.stats import pooled, ratio
from libs.tools.provision import ProvisionSettings, provision
from libs.tools.topics_admin import create_topics
from signgate_contracts import Message, Topic, TopicKind, encode
from signgate_contracts import authentication as auth
from signgate_contracts import identity as idn
from signgate_contracts import workflow as wf
from signgate_contracts.topics import (
    AUTHENTICATION_COMMANDS,
    AUTHENTICATION_EVENTS,
    IDENTITY_COMMANDS,
    IDENTITY_EVENTS,
    IDENTITY_REPLIES,
)

RIGHT, WRONG = "482913", "000000"
PER_PACKAGE = 5
"""Signers per prepared package. A package's commands are handled one at a time, in order (its id
is the key), so this and the interleaving below decide how much of a load can run concurrently."""
SERVICES = {
    "identity": "services.identity.app:create_app",
    "workflow": "services.workflow.app:create_app",
    "authentication": "services.authentication.app:create_app",
    "otp_dispatch": "services.otp_dispatch.app:create_app",
}
GATEWAY = "gateway"
GATEWAY_APP = "services.gateway.app:create_app"
GATEWAY_RATE = 200
"""The offered rate the gateway is compared with Kafka at (verifications per second)."""
GATEWAY_ROUNDS = ("kafka", "http", "http", "kafka")
"""The order of one comparison's rounds: each path as often, first and last in turn, so that a
load that drifts during the run weighs on both alike."""
CEILING_IN = Topic(
    "bench.ceiling.in",
    TopicKind.COMMANDS,
    "package_id",
    6,
    timedelta(hours=1),
    (),
    "Bench echo in.",
)
CEILING_OUT = Topic(
    "bench.ceiling.out",
    TopicKind.EVENTS,
    "package_id",
    6,
    timedelta(hours=1),
    (),
    "Bench echo out.",
)


@dataclass(frozen=True)
class Sizes:
    verify_max: int
    rate_seconds: float
    ceiling: int
    otp_requests: int
    secrets: int
    rates: tuple[int, ...] = (200, 1_000, 2_000)
    gateway_comparisons: int = 1
    """How many times the gateway's rounds (`GATEWAY_ROUNDS`) run, each round `rate_seconds` long."""

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        if quick:
            return cls(
                verify_max=2_000,
                rate_seconds=1.5,
                ceiling=4_000,
                otp_requests=300,
                secrets=40,
                gateway_comparisons=2,
            )
        return cls(
            verify_max=5_000,
            rate_seconds=3.0,
            ceiling=20_000,
            otp_requests=1_000,
            secrets=150,
            gateway_comparisons=3,
        )


@dataclass
class Bench:
    connections: ConnectionSettings
    secrets: dict[str, str]
    folder: Path
    env: dict[str, str]
    pool: asyncpg.Pool
    """On the authentication service's schema."""
    workflow_pool: asyncpg.Pool
    """On the workflow service's schema."""
    redis: RedisClient
    processes: dict[str, list[subprocess.Popen]] = field(default_factory=dict)
    ports: dict[str, list[int]] = field(default_factory=dict)
    jobs: int = 0

    @cached_property
    def invitations(self) -> InvitationIssuer:
        return InvitationIssuer(
            InvitationSettings(
                private_key=SecretStr(self.secrets["SIGNGATE_INVITATION_PRIVATE_KEY"])
            )
        )

    def invitation(self, package_id: str, order: int) -> SecretStr:
        """The recipient's invitation, as the workflow service would issue it for the seeded
        recipient (authentication version 0): every recipient command carries one."""
        return SecretStr(self.invitations.issue(package_id, order, 0, datetime.now(UTC))[0])

    # -- processes --

    def start(self, name: str, replicas: int = 1) -> None:
        """``replicas`` processes of a service, or of the gateway, as the Procfile runs them."""
        runner = (
            ["uvicorn", GATEWAY_APP, "--factory", "--log-level", "warning"]
            if name == GATEWAY
            else ["faststream", "run", SERVICES[name], "--factory"]
        )
        for _ in range(replicas):
            port = free_port()
            log = open(self.folder / f"{name}-{port}.log", "wb")  # noqa: SIM115 (closed with the process)
            process = subprocess.Popen(
                [sys.executable, "-m", *runner, "--host", "127.0.0.1", "--port", str(port)],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            self.processes.setdefault(name, []).append(process)
            self.ports.setdefault(name, []).append(port)

    def stop(self, name: str) -> None:
        for process in self.processes.pop(name, []):
            process.terminate()
        for process in self.processes.get(name, []):
            process.wait(10)
        self.ports.pop(name, None)

    def stop_all(self) -> None:
        for name in list(self.processes):
            for process in self.processes[name]:
                process.terminate()
            for process in self.processes[name]:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(15)
                if process.poll() is None:
                    process.kill()
        self.processes.clear()

    async def healthy(self, name: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            for port in self.ports[name]:
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        if (
                            await client.get(f"http://127.0.0.1:{port}/health", timeout=2)
                        ).status_code == 200:
                            break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{name} on port {port} did not become healthy")
                    await asyncio.sleep(0.2)

    def memory(self) -> dict[str, float]:
        """Resident memory (MiB) of each service, per process, after the load."""
        import psutil

        out = {}
        for name, processes in self.processes.items():
            sizes = []
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(process.pid)
                    rss = proc.memory_info().rss + sum(
                        c.memory_info().rss for c in proc.children(recursive=True)
                    )
                    sizes.append(rss / 2**20)
            if sizes:
                out[name] = max(sizes)
        return out

    # -- load --

    async def load(
        self,
        name: str,
        topic: str,
        answer_topics: list[str],
        records: list[list[str]],
        rate: float | None = None,
        answer_types: list[str] | None = None,
        timeout: float = 300,
    ) -> dict:
        result = await self.generate(
            name,
            "libs.tools.bench.loadgen",
            {
                "bootstrap": self.connections.kafka_bootstrap,
                "topic": self.connections.topic(topic)
                if not topic.startswith(self.connections.topic_prefix)
                else topic,
                "answer_topics": answer_topics,
                "records": records,
                "rate": rate,
                "answer_types": answer_types,
                "timeout": timeout,
            },
        )
        print(
            f"  {name}: {result['answered']}/{result['sent']} answered, {result['throughput']:.0f}/s, "
            f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, load {_load()}",
            flush=True,
        )
        return result

    async def generate(self, name: str, module: str, job: dict) -> dict:
        """Run load generator ``module`` on ``job`` in its own process; its result, with the load
        average and the CPU the bench's processes spent per answer, by role."""
        self.jobs += 1
        job_file = self.folder / f"job-{self.jobs}.json"
        result_file = self.folder / f"result-{self.jobs}.json"
        job_file.write_text(json.dumps(job))
        services = {p.pid: name for name, processes in self.processes.items() for p in processes}
        before = cpu.cpu_seconds(services)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, str(job_file), str(result_file), cwd=ROOT, env=self.env
        )
        if await process.wait() != 0:
            raise RuntimeError(f"load generator failed on {name}")
        job_file.unlink()
        result = json.loads(result_file.read_text())
        result["load_average"] = os.getloadavg()
        result["cpu_us_per_message"] = cpu.per_message(
            before, cpu.cpu_seconds(services), max(result["answered"], 1)
        )
        return result

    # -- data --

    async def recipients(
        self, count: int, policy: wf.AuthenticationPolicy | None = None, phones: bool = False
    ) -> list[tuple[str, int]]:
        """``count`` recipients in packages of ``PER_PACKAGE``, each with ``policy`` (or an SMS OTP
        policy), known to the authentication service's projection and, shared, to the workflow
        service (which records each authentication fact in the package's history)."""
        from services.authentication import projection, repository
        from services.workflow import domain as workflow
        from services.workflow import repository as workflow_db

        digests = Digests(self.secrets["SIGNGATE_DIGEST_KEY"])
        run = uuid.uuid4().hex[:8]
        packages = [f"bench-{run}-{n}" for n in range((count + PER_PACKAGE - 1) // PER_PACKAGE)]
        made: list[tuple[str, int]] = []

        async def one(package_id: str, orders: range) -> None:
            summaries = [
                wf.RecipientSummary(
                    order=o,
                    name=f"R{o}",
                    role="signer",
                    email_masked="r***@example.com",
                    email_digest=digests.email(f"r{o}@{package_id}.example.com"),
                )
                for o in orders
            ]
            async with self.pool.acquire() as connection, connection.transaction():
                scope: Scope[Any] = Scope(
                    None, connection
                )  # these projections need only the connection
                await projection.handle_package_registered(
                    wf.PackageRegistered(
                        package_id=package_id,
                        owner_id=str(uuid.uuid4()),
                        name="Bench",
                        workflow_type="sequential",
                        state="draft",
                        documents=[wf.DocumentSummary(document_id="doc-1", name="bench.pdf")],
                        recipients=summaries,
                    ),
                    scope,
                )
                for summary in summaries:
                    rule = policy or _otp_policy(
                        _phone(package_id, summary.order) if phones else "+442079460123"
                    )
                    await projection.handle_recipient_authentication_updated(
                        wf.RecipientAuthenticationUpdated(
                            package_id=package_id,
                            order=summary.order,
                            email_digest=summary.email_digest,
                            authentication=rule,
                            access_window=None,
                        ),
                        scope,
                    )
                await repository.update_package_state(connection, package_id, "in_progress")
            async with self.workflow_pool.acquire() as connection, connection.transaction():
                await workflow_db.insert_package(
                    connection,
                    workflow.Package(
                        package_id=package_id,
                        owner_id=str(uuid.uuid4()),
                        name="Bench",
                        workflow_type="sequential",
                        documents=(workflow.Document("doc-1", "bench.pdf"),),
                        recipients=tuple(
                            workflow.Recipient(
                                order=o,
                                email=f"r{o}@{package_id}.example.com",
                                name=f"R{o}",
                                status="received",
                            )
                            for o in orders
                        ),
                        registered_at=datetime.now(UTC),
                        state="in_progress",
                        shared_at=datetime.now(UTC),
                    ),
                )

        tasks = []
        for i, package_id in enumerate(packages):
            orders = range(1, min(PER_PACKAGE, count - i * PER_PACKAGE) + 1)
            made += [(package_id, o) for o in orders]
            tasks.append(one(package_id, orders))
        for chunk in _chunks(tasks, 8):
            await asyncio.gather(*chunk)
        async with self.pool.acquire() as connection:
            # What autovacuum does within a minute in a deployment: without fresh statistics, the
            # services' cached plans stay those made when the tables were nearly empty (a
            # sequential scan of the workflow's recipients cost 0.5 ms a lookup at 11,000 rows).
            await connection.execute("ANALYZE")
        return made

    async def challenges(self, recipients: list[tuple[str, int]]) -> None:
        """A pending code ``RIGHT`` for each recipient, through the OTP store."""
        store = OtpStore(
            self.redis,
            prefix=self.connections.redis_prefix,
            pepper=self.secrets["SIGNGATE_OTP_PEPPER"],
        )
        limits = SendLimits(
            resend_cooldown=timedelta(0), per_recipient=1_000, per_destination=10**9
        )
        calls = [
            store.issue(
                uuid.uuid4(),
                OtpRecipient.document_opening(p, o),
                challenge_id=uuid.uuid4(),
                code=RIGHT,
                channel="sms",
                destination=_phone(p, o),
                ttl=timedelta(minutes=10),
                limits=limits,
            )
            for p, o in recipients
        ]
        for chunk in _chunks(calls, 50):
            await asyncio.gather(*chunk)


def _otp_policy(phone: str) -> wf.AuthenticationPolicy:
    return wf.AuthenticationPolicy(
        methods=["sms_otp"],
        destination=wf.Destination(channel="sms", address=phone, masked="+44******0123"),
        retry_count=wf.DEFAULT_RETRY_COUNT,
        frequency="OncePerDocument",
    )


def _phone(package_id: str, order: int) -> str:
    return f"+4479{abs(hash((package_id, order))) % 10**8:08d}"


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _record(message: Message, key: str) -> list[str]:
    return [key, encode(message).decode(), str(message.correlation_id)]


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def raw_argon2_rate(hasher: SecretHasher, seconds: float, threads: int) -> float:
    """Verifications per second of one stored hash, by ``threads`` threads for ``seconds``."""
    stored = hasher.hash_now("bench secret")
    deadline = time.perf_counter() + seconds

    def work() -> int:
        done = 0
        while time.perf_counter() < deadline:
            hasher.verify_now(stored, "bench secret")
            done += 1
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(lambda _: work(), range(threads)))
    return total / (time.perf_counter() - started)


def record_authentication_cost(
    secrets: dict[str, str], samples: int = 2_000
) -> tuple[float, float]:
    """CPU µs to sign one record as its writer does, and to verify it as a consumer does, on a
    typical event (an authentication fact, keyed by package)."""
    signer = RecordSigner(secrets[signing_key_variable("SIGNGATE_AUTHENTICATION_")])
    verifier = RecordVerifier(json.loads(secrets[PUBLIC_KEYS_VARIABLE]))
    value = encode(
        auth.RecipientAuthenticated(package_id="bench-0000000-0", order=1, method="sms_otp")
    )
    topic, key = "signgate.authentication.events", b"bench-0000000-0"
    plain = {"type": "authentication.recipient_authenticated", "content-type": "application/json"}
    started = time.process_time()
    for _ in range(samples):
        signed = signer.headers(topic, key, value, plain)
    signing = time.process_time() - started
    headers = [(name, text.encode()) for name, text in signed.items()]
    started = time.process_time()
    for _ in range(samples):
        verifier.verify(topic, key, value, headers, "authentication")
    verifying = time.process_time() - started
    return signing / samples * 1e6, verifying / samples * 1e6


def recipient_credential_cost(secrets: dict[str, str], samples: int = 2_000) -> dict[str, float]:
    """CPU µs of what the trust boundary adds: the workflow sealing a policy's secret part and the
    authentication service opening it (once per policy update, at projection, not per attempt),
    and the authentication service checking a recipient's invitation (once per recipient command)."""
    sealer = Sealer("authentication", public_keys_of(secrets)["authentication"])
    opener = Opener(json.loads(secrets[private_keys_variable("authentication")]))
    secret = {
        "secret_hash": "$argon2id$v=19$m=8192,t=1,p=1$" + "a" * 22 + "$" + "b" * 43,
        "destination": "+447700900123",
    }
    issuer = InvitationIssuer(
        InvitationSettings(private_key=SecretStr(secrets["SIGNGATE_INVITATION_PRIVATE_KEY"]))
    )
    checker = InvitationVerifier(
        InvitationSettings(public_key=secrets["SIGNGATE_INVITATION_PUBLIC_KEY"]),
        lambda: datetime.now(UTC),
    )
    invitation, _ = issuer.issue("bench-0000000-0", 1, 1, datetime.now(UTC))

    def per_call(work) -> float:
        started = time.process_time()
        for _ in range(samples):
            work()
        return (time.process_time() - started) / samples * 1e6

    sealed = sealer.seal("policy:bench-0000000-0/1/1", secret)
    return {
        "seal": per_call(lambda: sealer.seal("policy:bench-0000000-0/1/1", secret)),
        "open": per_call(lambda: opener.open("policy:bench-0000000-0/1/1", sealed)),
        "verify_invitation": per_call(lambda: checker.verify(invitation)),
    }


async def pending_codes(bench: Bench, count: int) -> list[tuple[str, int, str]]:
    """``count`` prepared recipients with pending codes, each with the code to send: half right,
    half wrong, in an order that interleaves packages (many signers of many documents at once)."""
    recipients = await bench.recipients(count)
    await bench.challenges(recipients)
    random.Random(count).shuffle(recipients)
    return [(p, o, RIGHT if i % 2 == 0 else WRONG) for i, (p, o) in enumerate(recipients)]


async def verifications(bench: Bench, count: int) -> list[list[str]]:
    """`pending_codes`' verifications as Kafka records."""
    return [
        _record(
            auth.VerifyDocumentOtp(
                package_id=p, order=o, invitation=bench.invitation(p, o), code=SecretStr(code)
            ),
            p,
        )
        for p, o, code in await pending_codes(bench, count)
    ]


async def path_requests(bench: Bench, count: int) -> list[list]:
    """`pending_codes`' verifications as `libs.tools.bench.paths` sends them, each with the answer
    it must get."""
    return [
        [
            p,
            o,
            bench.invitation(p, o).get_secret_value(),
            code,
            "opened" if code == RIGHT else "refused",
        ]
        for p, o, code in await pending_codes(bench, count)
    ]


async def gateway_against_kafka(bench: Bench, report: Report, sizes: Sizes) -> None:
    """The SigningHub OTP verification over HTTP through the gateway, and the same verification as
    a Kafka command through `signgate_client`, each at `GATEWAY_RATE` offered, in alternating
    rounds; latency, rate, errors and CPU per verification, with their ratios."""
    from services.gateway.settings import GatewaySettings

    c = bench.connections
    bench.start(GATEWAY)
    await bench.healthy(GATEWAY)
    gateway_url = f"http://127.0.0.1:{bench.ports[GATEWAY][0]}"
    fetch_wait = bench.env.get("SIGNGATE_GATEWAY_FETCH_MAX_WAIT_MS")
    base = {
        "rate": GATEWAY_RATE,
        "gateway_url": gateway_url,
        "bootstrap": c.kafka_bootstrap,
        "topic_prefix": c.topic_prefix,
        "fetch_max_wait_ms": int(fetch_wait)
        if fetch_wait
        else GatewaySettings.model_fields["fetch_max_wait_ms"].default,
    }
    per_round = int(GATEWAY_RATE * sizes.rate_seconds)
    rounds: dict[str, list[dict]] = {"http": [], "kafka": []}
    try:
        for mode in ("kafka", "http"):  # warm-up: connections, the gateway's first requests
            await _path_round(bench, base, mode, await path_requests(bench, 100), "warm-up")
        order = list(GATEWAY_ROUNDS) * sizes.gateway_comparisons
        prepared = [await path_requests(bench, per_round) for _ in order]  # rounds close in time
        for mode, requests in zip(order, prepared, strict=True):
            rounds[mode].append(await _path_round(bench, base, mode, requests, "round"))
        resident = bench.memory().get(GATEWAY)
    finally:
        bench.stop(GATEWAY)
    http, kafka = (pooled(rounds[mode], GATEWAY_RATE) for mode in ("http", "kafka"))
    for path, result in (("http", http), ("kafka", kafka)):
        done = rounds[path]
        result["cpu_us_per_message"] = _mean_by_role([r["cpu_us_per_message"] for r in done])
        result["caller_cpu_us_per_message"] = sum(
            r["caller_cpu_us_per_message"] for r in done
        ) / len(done)
        result["send_late_p99_ms"] = max(r["send_late_p99_ms"] for r in done)
        result["load_averages"] = [r["load_average"] for r in done]
        report.runs[f"otp_verify_{path}_at_{GATEWAY_RATE}"] = result
    report.context["gateway_rounds"] = order
    for row in gateway_rows(http, kafka):
        report.add(row)
    if resident is not None:
        report.add(Row(f"resident memory: {GATEWAY}", resident, "MiB", note="after its rounds"))


async def _path_round(bench: Bench, base: dict, mode: str, requests: list[list], what: str) -> dict:
    reply_topic = f"{bench.connections.topic(bench.connections.caller_reply_prefix)}bench.{uuid.uuid4().hex[:8]}"
    result = await bench.generate(
        f"{mode} {what}",
        "libs.tools.bench.paths",
        {**base, "mode": mode, "requests": requests, "reply_topic": reply_topic},
    )
    print(
        f"  {mode} {what} at {GATEWAY_RATE}/s: {result['answered'] - result['errors']}/{result['sent']} right, "
        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, load {_load()}",
        flush=True,
    )
    return result


def gateway_rows(gateway: dict, kafka: dict) -> list[Row]:
    """The gateway's latency, achieved rate and CPU per verification at `GATEWAY_RATE` offered,
    each with its ratio to the same figure over Kafka, measured in the same run (on a shared
    machine only the ratio of two runs side by side is worth reading)."""
    rows = [
        Row(
            f"OTP verification via the gateway (HTTP) {q} at {GATEWAY_RATE}/s offered",
            gateway[f"{q}_ms"],
            "ms",
            ratio(gateway[f"{q}_ms"], kafka[f"{q}_ms"]),
            "Kafka direct",
            note=f"Kafka direct {kafka[f'{q}_ms']:.1f} ms",
        )
        for q in ("p50", "p95", "p99", "max")
    ]
    rows.append(
        Row(
            f"OTP verification via the gateway (HTTP), achieved rate at {GATEWAY_RATE}/s offered",
            gateway["achieved_rate"],
            "verif/s",
            ratio(gateway["achieved_rate"], kafka["achieved_rate"]),
            "Kafka direct",
            note=f"errors {gateway['errors']}/{gateway['sent']} (Kafka direct: "
            f"{kafka['achieved_rate']:.0f}/s, errors {kafka['errors']}/{kafka['sent']})",
        )
    )
    spent, spent_kafka = gateway["cpu_us_per_message"], kafka["cpu_us_per_message"]
    rows.append(
        Row(
            "CPU per OTP verification via the gateway (services, servers, gateway)",
            sum(spent.values()),
            "µs",
            ratio(sum(spent.values()), sum(spent_kafka.values())),
            "Kafka direct",
            note=by_role(spent),
        )
    )
    rows.append(
        Row(
            "CPU per OTP verification in the caller: HTTP keep-alive against signgate_client",
            gateway["caller_cpu_us_per_message"],
            "µs",
            ratio(gateway["caller_cpu_us_per_message"], kafka["caller_cpu_us_per_message"]),
            "signgate_client",
            note=f"the load generator, left out above; it sent up to "
            f"{gateway['send_late_p99_ms']:.1f} ms late over HTTP, "
            f"{kafka['send_late_p99_ms']:.1f} ms over Kafka (p99)",
        )
    )
    rows.append(
        Row(
            "CPU per OTP verification in the gateway process",
            spent.get(GATEWAY, 0.0),
            "µs",
            ratio(spent.get(GATEWAY, 0.0), sum(spent_kafka.values())),
            "all CPU per verification over Kafka direct",
        )
    )
    return rows


def _mean_by_role(readings: list[dict[str, float]]) -> dict[str, float]:
    """Rounds of equal size: the mean CPU per message of each role over them."""
    roles = {role for reading in readings for role in reading}
    return {role: sum(r.get(role, 0.0) for r in readings) / len(readings) for role in roles}


async def run(args: argparse.Namespace) -> Report:
    sizes = Sizes.of(args.quick)
    report = Report()
    report.context = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "replicas": args.replicas,
        "lanes": args.lanes,
        "fetch_max_wait_ms": args.fetch_max_wait_ms,
        "quick": args.quick,
        "gateway_only": args.gateway_only,
        "load_average_at_start": os.getloadavg(),
    }
    print(f"load average at start: {_load()}", flush=True)
    pepper = generate_secrets()["SIGNGATE_SECRET_PEPPER"]
    secret_settings = SecretSettings(pepper=SecretStr(pepper))
    hasher = SecretHasher.from_settings(secret_settings)
    argon_seconds = 1.0 if args.quick else 3.0
    argon_one = raw_argon2_rate(hasher, argon_seconds, 1)
    argon_all = raw_argon2_rate(hasher, argon_seconds, os.cpu_count() or 1)
    print(
        f"raw argon2id: {argon_one:.1f}/s on 1 thread, {argon_all:.1f}/s on {os.cpu_count()} threads, load {_load()}"
    )

    with (
        tempfile.TemporaryDirectory(prefix="signgate-bench-") as data,
        open_stack(Path(data)) as endpoints,
    ):
        prefix = f"bench{uuid.uuid4().hex[:6]}"
        connections = ConnectionSettings(
            kafka_bootstrap=endpoints.kafka_bootstrap,
            database_url=endpoints.database_url,
            redis_url=endpoints.redis_url,
            kafka_idempotence=not uses_embedded_broker(),
            topic_prefix=f"{prefix}.",
            redis_prefix=f"{prefix}:",
            log_level="WARNING",
        )
        from services.registry import SERVICES as DEFINITIONS

        await provision(ProvisionSettings(connections=connections), DEFINITIONS)
        await create_topics(connections, [CEILING_IN, CEILING_OUT])
        secrets = {
            **generate_secrets(),
            "SIGNGATE_SECRET_PEPPER": pepper,
        }
        folder = Path(data) / "bench"
        folder.mkdir()
        env = {
            **os.environ,
            **secrets,
            "PYTHONUNBUFFERED": "1",
            "SIGNGATE_KAFKA_BOOTSTRAP": connections.kafka_bootstrap,
            "SIGNGATE_DATABASE_URL": connections.database_url,
            "SIGNGATE_REDIS_URL": connections.redis_url,
            "SIGNGATE_TOPIC_PREFIX": connections.topic_prefix,
            "SIGNGATE_REDIS_PREFIX": connections.redis_prefix,
            "SIGNGATE_LOG_LEVEL": "WARNING",
            "SIGNGATE_KAFKA_IDEMPOTENCE": str(connections.kafka_idempotence).lower(),
            **security_environment(connections),
            "SIGNGATE_OTP_DISPATCH_SANDBOX_OUTBOX": str(folder / "sandbox-outbox.jsonl"),
            "SIGNGATE_OTP_DISPATCH_RESEND_COOLDOWN_SECONDS": "0",
            # the gateway's limits are Redis counters it still keeps; here they must not refuse
            # one test client's address its load
            "SIGNGATE_GATEWAY_RATE_LIMIT_PER_ADDRESS": str(10**9),
            "SIGNGATE_GATEWAY_RATE_LIMIT_PER_CREDENTIAL": str(10**9),
            **(
                {f"SIGNGATE_{name.upper()}_LANES": str(args.lanes) for name in SERVICES}
                if args.lanes
                else {}
            ),
            **(
                {
                    f"SIGNGATE_{name.upper()}_FETCH_MAX_WAIT_MS": str(args.fetch_max_wait_ms)
                    for name in [*SERVICES, GATEWAY]
                }
                if args.fetch_max_wait_ms is not None
                else {}
            ),
        }
        bench = Bench(
            connections,
            secrets,
            folder,
            env,
            pool=await create_pool(connections.database_url, "authentication", max_size=8),
            workflow_pool=await create_pool(connections.database_url, "workflow", max_size=8),
            redis=await open_redis(connections.redis_url, cluster=connections.redis_cluster),
        )
        try:
            if args.gateway_only:
                await start_services(bench, args.replicas)
                await gateway_against_kafka(bench, report, sizes)
            else:
                await scenarios(bench, report, sizes, args.replicas, hasher, argon_one, argon_all)
        finally:
            bench.stop_all()
            await bench.pool.close()
            await bench.workflow_pool.close()
            await bench.redis.aclose()
            if args.keep_logs:
                target = DATA_DIR / "bench-logs"
                DATA_DIR.mkdir(parents=True, exist_ok=True)
                subprocess.run(["rm", "-rf", str(target)], check=False)
                subprocess.run(["cp", "-r", str(folder), str(target)], check=False)
    report.context["load_average_at_end"] = os.getloadavg()
    return report


async def start_services(bench: Bench, replicas: int) -> None:
    for name in SERVICES:
        bench.start(name, replicas if name == "authentication" else 1)
    for name in SERVICES:
        await bench.healthy(name)
    print(f"services up ({replicas} authentication replica(s)), load {_load()}", flush=True)


async def scenarios(
    bench: Bench,
    report: Report,
    sizes: Sizes,
    replicas: int,
    hasher: SecretHasher,
    argon_one: float,
    argon_all: float,
) -> None:
    c = bench.connections
    events = [c.topic(AUTHENTICATION_EVENTS.name)]

    # -- the ceiling: same broker, same Redis, same load generator --
    echo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "libs.tools.bench.ceiling",
            c.kafka_bootstrap,
            c.redis_url,
            c.topic(CEILING_IN.name),
            c.topic(CEILING_OUT.name),
            c.redis_prefix,
        ],
        cwd=ROOT,
        env=bench.env,
    )
    try:
        sample = encode(
            auth.VerifyDocumentOtp(
                package_id="bench-0000000-0",
                order=1,
                code=SecretStr(RIGHT),
                invitation=bench.invitation("bench-0000000-0", 1),
            )
        ).decode()
        await bench.load(
            "ceiling warm-up",
            CEILING_IN.name,
            [c.topic(CEILING_OUT.name)],
            [[f"k{i}", sample, str(uuid.uuid4())] for i in range(500)],
        )
        ceiling = await bench.load(
            "ceiling",
            CEILING_IN.name,
            [c.topic(CEILING_OUT.name)],
            [[f"bench-{i % 300}", sample, str(uuid.uuid4())] for i in range(sizes.ceiling)],
        )
    finally:
        echo.terminate()
        echo.wait(10)
    report.runs["ceiling"] = ceiling
    report.add(Row("ceiling: aiokafka echo + 1 Redis round trip", ceiling["throughput"], "msg/s"))
    echo_cpu = ceiling["cpu_us_per_message"]
    report.add(
        Row(
            "CPU per echoed message (echo, broker, Redis)",
            sum(echo_cpu.values()),
            "µs",
            note=by_role(echo_cpu),
        )
    )
    sign_us, verify_us = record_authentication_cost(bench.secrets)
    report.context["record_authentication_us"] = {"sign": sign_us, "verify": verify_us}
    report.add(
        Row(
            "record authentication: Ed25519 sign + verify of one record",
            sign_us + verify_us,
            "µs",
            ratio(sign_us + verify_us, sum(echo_cpu.values())),
            "CPU per echoed message",
            note=f"sign {sign_us:.0f} µs (writer), verify {verify_us:.0f} µs (each consumer)",
        )
    )
    credential = recipient_credential_cost(bench.secrets)
    report.context["recipient_credential_us"] = credential
    report.add(
        Row(
            "recipient invitation check, per recipient command",
            credential["verify_invitation"],
            "µs",
            ratio(credential["verify_invitation"], sum(echo_cpu.values())),
            "CPU per echoed message",
            note="an Ed25519 JWT verification, in the authentication service",
        )
    )
    report.add(
        Row(
            "policy sealing + opening, per policy update",
            credential["seal"] + credential["open"],
            "µs",
            ratio(credential["seal"] + credential["open"], sum(echo_cpu.values())),
            "CPU per echoed message",
            note=f"seal {credential['seal']:.0f} µs (workflow), open {credential['open']:.0f} µs "
            "(authentication, at projection: never per attempt)",
        )
    )

    # -- the services --
    await start_services(bench, replicas)

    await bench.load(
        "verify warm-up", AUTHENTICATION_COMMANDS.name, events, await verifications(bench, 500)
    )
    verify = await bench.load(
        "verify max",
        AUTHENTICATION_COMMANDS.name,
        events,
        await verifications(bench, sizes.verify_max),
    )
    report.runs["otp_verify_max"] = verify
    report.add(
        Row(
            f"OTP verification, max sustained ({replicas} replica)",
            verify["throughput"],
            "verif/s",
            ratio(verify["throughput"], ceiling["throughput"]),
            "ceiling",
            ">= 5,000/s and >= 50%",
            f"{verify['outcomes']}",
        )
    )
    verify_cpu = verify["cpu_us_per_message"]
    report.add(
        Row(
            "CPU per OTP verification (services and servers)",
            sum(verify_cpu.values()),
            "µs",
            ratio(sum(verify_cpu.values()), sum(echo_cpu.values())),
            "an echoed message",
            note=by_role(verify_cpu),
        )
    )
    for rate in sizes.rates:
        records = await verifications(bench, int(rate * sizes.rate_seconds))
        fixed = await bench.load(
            f"verify at {rate}/s", AUTHENTICATION_COMMANDS.name, events, records, rate=rate
        )
        report.runs[f"otp_verify_at_{rate}"] = fixed
        answered = f"{fixed['answered']}/{fixed['sent']} answered"
        for q in ("p50", "p95", "p99"):
            target = "<= 25 ms" if (rate == 1_000 and q == "p99") else ""
            report.add(
                Row(
                    f"OTP verification {q} at {rate:,}/s offered",
                    fixed[f"{q}_ms"],
                    "ms",
                    target=target,
                    note=answered if q == "p50" else "",
                )
            )

    # -- the gateway: the same verification over HTTP and over Kafka, side by side --
    await gateway_against_kafka(bench, report, sizes)

    # -- OTP request -> OtpSent, through both services and the sandbox provider --
    requesting = await bench.recipients(sizes.otp_requests + 200, phones=True)
    requests = [
        _record(
            auth.RequestDocumentOtp(package_id=p, order=o, invitation=bench.invitation(p, o)), p
        )
        for p, o in requesting
    ]
    sent_types = ["authentication.document_otp_sent"]
    paced = await bench.load(
        "OTP request at 200/s",
        AUTHENTICATION_COMMANDS.name,
        events,
        requests[:200],
        rate=200,
        answer_types=sent_types,
    )
    flat = await bench.load(
        "OTP request max",
        AUTHENTICATION_COMMANDS.name,
        events,
        requests[200:],
        answer_types=sent_types,
    )
    report.runs["otp_request_at_200"], report.runs["otp_request_max"] = paced, flat
    report.add(
        Row(
            "OTP request -> OtpSent, max sustained",
            flat["throughput"],
            "req/s",
            ratio(flat["throughput"], ceiling["throughput"]),
            "ceiling",
        )
    )
    report.add(
        Row(
            "OTP request -> OtpSent p50 / p99 at 200/s",
            paced["p50_ms"],
            "ms",
            note=f"p99 {paced['p99_ms']:.1f} ms, {paced['answered']}/{paced['sent']} answered",
        )
    )

    # -- access codes and API users: argon2 by design; the raw rate measured again here, under the
    # same background load as the runs it is compared with --
    argon_one = raw_argon2_rate(hasher, 2.0, 1)
    argon_all = raw_argon2_rate(hasher, 2.0, os.cpu_count() or 1)
    print(
        f"raw argon2id now: {argon_one:.1f}/s on 1 thread, {argon_all:.1f}/s on all cores, load {_load()}"
    )
    report.context["raw_argon2"] = {"one_thread": argon_one, "all_cores": argon_all}
    secret = "Bench-access-code-7"
    code_policy = wf.AuthenticationPolicy(
        methods=["access_code"],
        secret_hash=hasher.hash_now(secret),
        retry_count=wf.DEFAULT_RETRY_COUNT,
        frequency="OncePerDocument",
    )
    openers = await bench.recipients(sizes.secrets, policy=code_policy)
    opened = await bench.load(
        "access code",
        AUTHENTICATION_COMMANDS.name,
        events,
        [
            _record(
                auth.OpenDocumentWithPassword(
                    package_id=p,
                    order=o,
                    invitation=bench.invitation(p, o),
                    password=SecretStr(secret),
                ),
                p,
            )
            for p, o in openers
        ],
    )
    report.runs["access_code_max"] = opened
    report.add(
        Row(
            "access-code opening, max sustained",
            opened["throughput"],
            "open/s",
            ratio(opened["throughput"], argon_all),
            "raw argon2 (all cores)",
            ">= 90%",
            f"raw argon2id {argon_one:.1f}/s on 1 thread, {argon_all:.1f}/s on all cores",
        )
    )

    issuer = TokenIssuer(bench.secrets["SIGNGATE_TOKEN_PRIVATE_KEY"])
    admin = issuer.issue("operator:bench", "operator:bench", roles=["admin"]).token
    account = idn.AccountMembership(name="Bench", context_identifier=uuid.uuid4(), is_primary=True)
    names = [f"bench-{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(20)]
    identity_answers = [c.topic(IDENTITY_EVENTS.name), c.topic(IDENTITY_REPLIES.name)]
    await bench.load(
        "register users",
        IDENTITY_COMMANDS.name,
        identity_answers,
        [
            _record(
                idn.RegisterUser(
                    user_name=n,
                    accounts=[account],
                    password=SecretStr("bench password"),
                    access_token=SecretStr(admin),
                ),
                n.lower(),
            )
            for n in names
        ],
    )
    users = await bench.load(
        "user authentication",
        IDENTITY_COMMANDS.name,
        identity_answers,
        [
            _record(
                idn.AuthenticateUser(user_name=names[i % 20], password=SecretStr("bench password")),
                names[i % 20].lower(),
            )
            for i in range(sizes.secrets)
        ],
    )
    report.runs["user_authentication_max"] = users
    report.add(
        Row(
            "user authentication, max sustained",
            users["throughput"],
            "auth/s",
            ratio(users["throughput"], argon_all),
            "raw argon2 (all cores)",
            ">= 90%",
        )
    )

    # -- resident memory, after the load --
    for name, mib in bench.memory().items():
        report.add(Row(f"resident memory: {name}", mib, "MiB", note="per process, after the load"))

    # -- scaling: the other replica count of the authentication service --
    other = 2 if replicas == 1 else 1
    bench.stop("authentication")
    bench.start("authentication", other)
    await bench.healthy("authentication")
    await bench.load(
        "verify warm-up", AUTHENTICATION_COMMANDS.name, events, await verifications(bench, 500)
    )
    scaled = await bench.load(
        f"verify max, {other} replicas",
        AUTHENTICATION_COMMANDS.name,
        events,
        await verifications(bench, sizes.verify_max),
    )
    report.runs[f"otp_verify_max_{other}_replicas"] = scaled
    report.add(
        Row(
            f"OTP verification, max sustained ({other} replica{'s' if other > 1 else ''})",
            scaled["throughput"],
            "verif/s",
            ratio(scaled["throughput"], verify["throughput"]),
            f"{replicas} replica{'s' if replicas > 1 else ''}",
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m libs.tools.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--replicas", type=int, default=1, help="authentication service replicas (default 1)"
    )
    parser.add_argument(
        "--lanes",
        type=int,
        default=None,
        help="lanes each service handles a batch in (default: the services' own, 4)",
    )
    parser.add_argument(
        "--fetch-max-wait-ms",
        type=int,
        default=None,
        help="how long the services' fetches wait at the broker (default: the services' own)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small runs: checks the harness in about a minute"
    )
    parser.add_argument(
        "--gateway-only",
        action="store_true",
        help="only the gateway beside Kafka (the services, the gateway, the two paths)",
    )
    parser.add_argument(
        "--out", type=Path, default=DATA_DIR / "bench.json", help="where the JSON report goes"
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help=f"copy the services' logs to {DATA_DIR}/bench-logs"
    )
    args = parser.parse_args(argv)
    report = asyncio.run(run(args))
    print()
    print(report.table())
    report.write(args.out)
    print(f"\nload average at end: {_load()}; written to {args.out}")
    return 0
