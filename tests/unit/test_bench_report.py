"""The bench's arithmetic: percentiles, run summaries, ratios and the report it writes."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from libs.tools.bench.paths import KeepAlive, http_verdict, kafka_verdict
from libs.tools.bench.report import Report, Row
from libs.tools.bench.scenarios import gateway_rows
from libs.tools.bench.stats import percentile, pooled, ratio, summarize


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(list(reversed(values)), 0) == 1
    assert percentile([7.0], 99) == 7
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_one_slow_answer_in_a_hundred_shows_at_p99_not_p95() -> None:
    latencies = [0.002] * 99 + [0.250]
    run = summarize(latencies, sent=100, elapsed=0.5, offered_rate=200)
    assert run.p50_ms == pytest.approx(2) and run.p95_ms == pytest.approx(2)
    assert run.p99_ms == pytest.approx(2) and run.max_ms == pytest.approx(250)
    latencies = [0.002] * 98 + [0.250, 0.250]
    assert summarize(latencies, sent=100, elapsed=0.5, offered_rate=200).p99_ms == pytest.approx(250)


def test_throughput_counts_answers_not_sends() -> None:
    run = summarize([0.01] * 80, sent=100, elapsed=2.0, offered_rate=None, outcomes={"x": 80})
    assert run.throughput == 40
    assert run.as_dict()["throughput"] == 40 and run.as_dict()["sent"] == 100
    assert summarize([], sent=5, elapsed=0, offered_rate=None).throughput == 0


def test_ratio_needs_a_reference() -> None:
    assert ratio(2_500, 5_000) == 0.5
    assert ratio(1, 0) is None


def test_report_prints_each_figure_with_its_ratio_and_writes_json(tmp_path) -> None:
    report = Report(context={"cpus": 2})
    report.add(Row("ceiling", 9_876.5, "msg/s"))
    report.add(Row("OTP verification", 5_000.0, "verif/s", 0.5063, "ceiling", ">= 50%"))
    report.add(Row("p99 at 1,000/s", 12.34, "ms"))
    report.runs["empty"] = summarize([], sent=3, elapsed=1.0, offered_rate=1_000).as_dict()
    table = report.table()
    lines = table.splitlines()
    assert lines[0].startswith("figure") and set(lines[1]) <= {"-", "+", " "}
    assert "9,876 msg/s" in table and "5,000 verif/s" in table and "51% of ceiling" in table
    assert "12.3 ms" in table

    path = tmp_path / "bench.json"
    report.write(path)
    written = json.loads(path.read_text(), parse_constant=pytest.fail)  # strict JSON: no NaN
    assert written["context"] == {"cpus": 2}
    assert [r["figure"] for r in written["rows"]] == ["ceiling", "OTP verification", "p99 at 1,000/s"]
    assert written["runs"]["empty"]["p99_ms"] is None


def _round(latencies_ms: list[float], errors: int, elapsed: float) -> dict:
    """One round of `libs.tools.bench.paths` as it reports it."""
    return {
        "latencies_ms": latencies_ms,
        "errors": errors,
        "sent": len(latencies_ms),
        "elapsed": elapsed,
        "outcomes": {"opened": len(latencies_ms) - errors, "http 504": errors},
    }


def test_rounds_of_one_path_pool_their_latencies_and_count_only_right_answers_as_achieved() -> None:
    """Two rounds of one path are one run: a slow answer of either round shows at its p99, and the
    achieved rate leaves out the answers that were errors."""
    fast = _round([2.0] * 198 + [3.0, 3.0], errors=0, elapsed=1.0)
    slow = _round([2.0] * 195 + [40.0] * 5, errors=5, elapsed=1.0)

    run = pooled([fast, slow], offered_rate=200)

    assert run["sent"] == run["answered"] == 400 and run["errors"] == 5 and run["rounds"] == 2
    assert run["p50_ms"] == pytest.approx(2) and run["p99_ms"] == pytest.approx(40)
    assert run["max_ms"] == pytest.approx(40)
    assert run["achieved_rate"] == pytest.approx(197.5) and run["throughput"] == pytest.approx(200)
    assert run["outcomes"] == {"opened": 395, "http 504": 5}


def test_the_gateway_section_sets_each_figure_beside_the_same_figure_over_kafka() -> None:
    """The comparison prints p50, p95, p99, max, the achieved rate with the errors, and the CPU per
    verification (all of it, the gateway process's, the caller's), each as a ratio of the Kafka
    path's."""
    gateway = {
        **pooled([_round([6.0] * 99 + [30.0], errors=1, elapsed=0.5)], offered_rate=200),
        "cpu_us_per_message": {"gateway": 900.0, "authentication": 600.0, "broker": 500.0},
        "caller_cpu_us_per_message": 800.0,
        "send_late_p99_ms": 3.0,
    }
    kafka = {
        **pooled([_round([4.0] * 99 + [20.0], errors=0, elapsed=0.5)], offered_rate=200),
        "cpu_us_per_message": {"gateway": 20.0, "authentication": 580.0, "broker": 400.0},
        "caller_cpu_us_per_message": 400.0,
        "send_late_p99_ms": 1.0,
    }
    report = Report(rows=gateway_rows(gateway, kafka))
    rows = {row.figure: row for row in report.rows}

    p50 = rows["OTP verification via the gateway (HTTP) p50 at 200/s offered"]
    assert p50.value == pytest.approx(6) and p50.ratio == pytest.approx(1.5)
    assert p50.note == "Kafka direct 4.0 ms"
    assert rows["OTP verification via the gateway (HTTP) p99 at 200/s offered"].ratio == pytest.approx(1.5)
    assert rows["OTP verification via the gateway (HTTP) max at 200/s offered"].value == pytest.approx(30)
    achieved = rows["OTP verification via the gateway (HTTP), achieved rate at 200/s offered"]
    assert achieved.value == pytest.approx(198) and achieved.ratio == pytest.approx(0.99)
    assert "errors 1/100" in achieved.note and "errors 0/100" in achieved.note
    spent = rows["CPU per OTP verification via the gateway (services, servers, gateway)"]
    assert spent.value == pytest.approx(2_000) and spent.ratio == pytest.approx(2)
    assert spent.note.startswith("gateway 900, authentication 600")
    own = rows["CPU per OTP verification in the gateway process"]
    assert own.value == pytest.approx(900) and own.ratio == pytest.approx(0.9)
    caller = rows["CPU per OTP verification in the caller: HTTP keep-alive against signgate_client"]
    assert caller.value == pytest.approx(800) and caller.ratio == pytest.approx(2)
    assert "3.0 ms late over HTTP, 1.0 ms over Kafka" in caller.note
    table = report.table()
    assert "150% of Kafka direct" in table and "99% of Kafka direct" in table


def test_a_path_without_answers_gives_no_ratio() -> None:
    """A reference run that got no answer (NaN latencies) leaves the ratio blank, not NaN."""
    assert ratio(5.0, math.nan) is None


def test_an_answer_counts_as_the_verdict_the_code_sent_must_get() -> None:
    """Over HTTP a 200 opens the document only with the grant in its body and a 403 refuses;
    over Kafka the success counts only with its grant; anything else is named as it came."""
    assert http_verdict(200, b'{"Message": "Access granted", "access_grant": "eyJ"}') == "opened"
    assert http_verdict(200, b'{"Message": "Authentication method passed"}') == "passed, no grant"
    assert http_verdict(403, b'{"Message": "Invalid OTP"}') == "refused"
    assert http_verdict(504, b"{}") == "http 504"
    assert kafka_verdict("authentication.recipient_authenticated", granted=True) == "opened"
    assert kafka_verdict("authentication.recipient_authenticated", granted=False) == (
        "authentication.recipient_authenticated"
    )
    assert kafka_verdict("authentication.recipient_authentication_failed", granted=False) == "refused"
    assert kafka_verdict("command.rejected", granted=False) == "command.rejected"


async def test_the_http_caller_reuses_its_connection_and_reads_status_and_body() -> None:
    """The bench's HTTP caller sends the path, headers and body it is given, reads the status and
    exactly the body the server announces, and sends the next request on the same connection."""
    seen: list[bytes] = []
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while head := await reader.readuntil(b"\r\n\r\n"):
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            seen.append(head + await reader.readexactly(length))
            body = b'{"Message": "Invalid OTP"}'
            writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            if len(seen) == 2:
                break
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = KeepAlive(f"http://127.0.0.1:{port}")
    try:
        first = await client.post("/v3/x/otp", b'{"otp": "1"}', {"X-Recipient-Invitation": "inv"})
        second = await client.post("/v3/y/otp", b'{"otp": "2"}', {})
    finally:
        client.close()
        server.close()
        await server.wait_closed()

    assert first == second == (403, b'{"Message": "Invalid OTP"}')
    assert connections == 1
    assert seen[0].startswith(b"POST /v3/x/otp HTTP/1.1\r\n") and seen[0].endswith(b'\r\n\r\n{"otp": "1"}')
    assert b"X-Recipient-Invitation: inv\r\n" in seen[0] and seen[1].startswith(b"POST /v3/y/otp ")
