"""The repo's Prometheus rules and Grafana dashboard, the metric names their expressions use, and the
names a service's metrics expose, so tests can hold one against the other."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics_core import Metric

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
RULES = MONITORING / "prometheus-rules.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"

SCRAPED_BY_PROMETHEUS = {"up"}
"""Series Prometheus makes for every target itself; no service serves them."""

GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$service": ".*", "${datasource}": "prometheus"}
"""What Grafana puts in place of its variables before Prometheus sees a query."""

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
             "bool", "offset", "inf", "nan"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NAME = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_expressions() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])]


def expressions() -> list[str]:
    """Every PromQL expression of the alert rules and the dashboard, Grafana's variables filled in."""
    found = [rule["expr"] for rule in rules()] + dashboard_expressions()
    for variable, value in GRAFANA_VARIABLES.items():
        found = [expression.replace(variable, value) for expression in found]
    return found


def metric_names(expression: str) -> set[str]:
    """The metric names an expression selects (functions, keywords, labels and durations left out)."""
    text = _STRING.sub('""', expression)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {name for name in _NAME.findall(text) if name.lower() not in _KEYWORDS}


_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}


def exposed_names(families: Iterable[Metric]) -> set[str]:
    """Every series name the families expose or will once observed (a labelled counter without
    children yet still names its ``_total``)."""
    names: set[str] = set()
    for family in families:
        names |= {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names
