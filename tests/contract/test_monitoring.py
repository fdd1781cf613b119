"""The Grafana dashboard and the Prometheus alert rules in deploy/monitoring/ hold together: they
parse, every alert is actionable, and every metric they read is one a service serves."""

from __future__ import annotations

import re

import promql_parser
import pytest

from libs.runtime.observability import Metrics, faststream_metrics
from tests.support.monitoring import (
    SCRAPED_BY_PROMETHEUS,
    dashboard,
    exposed_names,
    expressions,
    metric_names,
    rules,
)

DURATION = re.compile(r"^[1-9][0-9]*[smh]$")
PANELS = {"Consumer lag per partition", "Outbox backlog", "Outbox oldest row age",
          "Handling latency p50 / p99 by type", "Records handled by type", "Rejections by code",
          "Dead letters", "Redeliveries", "CPU", "Resident memory"}


def served_names() -> set[str]:
    """Every series name a service's registry exposes: signgate's, FastStream's and the process's."""
    metrics = Metrics("contract")
    faststream_metrics(metrics)  # registers FastStream's metrics in the service's registry
    return exposed_names(metrics.registry.collect())


def test_every_alert_rule_waits_names_a_severity_and_says_what_is_wrong() -> None:
    """Each alert has an expression, a `for` duration, a warning or critical severity and a summary."""
    found = rules()
    assert {rule["alert"] for rule in found} >= {
        "SigngateServiceDown", "SigngateServiceNotReady", "SigngateConsumerLagGrowing",
        "SigngatePartitionStalled", "SigngateDeadLetters", "SigngateOutboxStale"}
    for rule in found:
        assert rule["expr"].strip(), rule["alert"]
        assert DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]


def test_the_dashboard_has_a_panel_for_each_thing_an_operator_watches() -> None:
    """The dashboard parses, and has the lag, outbox, latency, throughput, rejection, dead-letter,
    redelivery, CPU and memory panels, each with a query."""
    board = dashboard()
    titles = {panel["title"] for panel in board["panels"]}
    assert titles >= PANELS, PANELS - titles
    for panel in board["panels"]:
        assert panel["targets"] and all(target["expr"].strip() for target in panel["targets"]), panel["title"]
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])


def test_every_metric_the_dashboard_and_the_alerts_read_is_registered_by_a_service() -> None:
    """No expression reads a metric the service's registry does not define (a typo, a rename)."""
    served = served_names() | SCRAPED_BY_PROMETHEUS
    used = {name for expression in expressions() for name in metric_names(expression)}
    assert used, "no metric names found in the expressions"
    assert used <= served, sorted(used - served)


def test_the_metric_name_reader_finds_selectors_and_nothing_else() -> None:
    """The reader behind the check above takes metric names, not functions, labels or durations."""
    expression = ('histogram_quantile(0.99, sum by (service, le) (rate(a_bucket{type="x.y"}[5m])))'
                  " > on (service) group_left b_total and up")
    assert metric_names(expression) == {"a_bucket", "b_total", "up"}


def test_every_expression_is_well_formed_promql() -> None:
    """Each expression parses as PromQL (with Grafana's variables filled in)."""
    for expression in expressions():
        promql_parser.parse(expression)


def test_the_parser_refuses_what_is_not_promql() -> None:
    """The PromQL check can fail: an unclosed selector and an unknown function are refused."""
    for broken in ['rate(signgate_messages_published_total{service="identity"[5m])', "nosuch(up)"]:
        with pytest.raises(ValueError):
            promql_parser.parse(broken)
