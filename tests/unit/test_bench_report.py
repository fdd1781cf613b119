"""The bench's arithmetic: percentiles, run summaries, ratios and the report it writes."""

from __future__ import annotations

import json
import math

import pytest

from libs.tools.bench.report import Report, Row
from libs.tools.bench.stats import percentile, ratio, summarize


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
