"""The Grafana dashboard and the Prometheus alert rules reference only series that the
server really exports: every expression is parsed, its metric names extracted, and each
name must appear in a real scrape of ``Metrics`` after every metric was exercised once."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import promql_parser as promql
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from server.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "auton8n-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
# Series Prometheus itself attaches to every target; not in any /metrics output.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

# PromQL words that look like identifiers but are not metric names.
KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "atan2",
}  # fmt: skip
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.$])[A-Za-z_:][\w:]*")


def metric_names(expr: str) -> set[str]:
    """Metric identifiers of one PromQL expression, by regex: strings, label matchers,
    range/subquery brackets, grouping clauses and Grafana variables are removed first;
    an identifier followed by "(" is a function; keywords are skipped."""
    text = _STRINGS.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group(0)
        follows = text[match.end() :].lstrip()[:1]
        if follows == "(" or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def grafana_to_promql(expr: str) -> str:
    """Grafana's variables replaced by values, so the expression is plain PromQL."""
    expr = re.sub(r"\$__(?:rate_interval|interval|range)\b", "5m", expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def dashboard_expressions() -> Iterator[str]:
    dashboard = json.loads(DASHBOARD.read_text())

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield grafana_to_promql(target["expr"])
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            found = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query["query"])
            assert found, query
            yield found.group(1)


def alert_rules() -> list[dict[str, Any]]:
    return [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]


def exported_series() -> set[str]:
    """Every sample name of a real scrape after each metric was used once."""
    m = Metrics()
    for grpc_type in ("unary", "server_stream", "client_stream", "bidi_stream"):
        method = m.grpc_method(grpc_type, "/auton8n.v1.PluginService/GetJob")
        method.started.inc()
        method.received.inc()
        method.sent.inc()
        method.handled(grpc.StatusCode.OK)
        if method.handling is not None:
            method.handling.observe(0.01)
    m.job_created()
    m.job_finished("SUCCEEDED", 30.0, 1)
    m.phase_finished("BUILDING", 2.0)
    m.set_queued_jobs(1)
    m.set_active_jobs(1)
    m.model_request("ok")
    m.model_tokens("input", 10)
    m.rate_limited("CreatePlugin")
    m.sandbox_killed("timeout")
    text = generate_latest(m.registry).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return exported_series()


def all_expressions() -> list[str]:
    return [*dashboard_expressions(), *(rule["expr"] for rule in alert_rules())]


@pytest.mark.parametrize("expr", all_expressions())
def test_every_referenced_metric_is_exported(expr: str, exported: set[str]) -> None:
    names = metric_names(expr)
    assert names, f"no metric in {expr!r}"
    missing = names - exported - SYNTHETIC
    assert not missing, f"{sorted(missing)} not in /metrics (from {expr!r})"


@pytest.mark.parametrize("expr", all_expressions())
def test_expressions_parse_and_the_regex_agrees_with_the_parser(expr: str) -> None:
    """A real PromQL parser (promql-parser) validates the syntax and cross-checks the
    regex extraction above."""
    ast = promql.parse(expr)
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql.VectorSelector) and node.name:
            names.add(node.name)

    promql.walk(ast, visit)
    assert names == metric_names(expr)


def test_suffixes_match_metric_types(exported: set[str]) -> None:
    """_bucket only under histogram_quantile; counters (_total) only inside rate/increase
    or as a difference of two counters; gauges never inside rate()."""
    for expr in all_expressions():
        for name in metric_names(expr):
            if name.endswith("_bucket"):
                assert "histogram_quantile" in expr, expr
            if name in {"auton8n_jobs_queued", "auton8n_jobs_active"}:
                assert not re.search(rf"\b(?:rate|increase)\({name}\b", expr), expr


def test_every_service_metric_is_on_the_dashboard(exported: set[str]) -> None:
    shown = set().union(*(metric_names(e) for e in dashboard_expressions()))
    families = {
        re.sub(r"_(?:total|bucket|sum|count|created)$", "", name)
        for name in exported
        if name.startswith(("auton8n_", "grpc_server_")) and not name.endswith("_created")
    }
    shown_families = {re.sub(r"_(?:total|bucket|sum|count)$", "", n) for n in shown}
    assert families <= shown_families, sorted(families - shown_families)


def test_dashboard_structure() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"], panel["title"]


def test_alert_rules_are_complete() -> None:
    rules = alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    runbook = (ROOT / "docs" / "operations.md").read_text()
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert {"summary", "description", "runbook"} <= rule["annotations"].keys()
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert f"### {anchor}" in runbook.lower(), f"no runbook entry for {rule['alert']}"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le) (rate(a_bucket{x="y(z)"}[5m]))', {"a_bucket"}),
        ("deriv(max(q)[30m:1m]) > 0 and on(job) up == 0", {"q", "up"}),
        ("x_total offset 5m / ignoring(code) y", {"x_total", "y"}),
        ("histogram_quantile(0.99, rate(h_bucket[1h])) > 1e3", {"h_bucket"}),
    ],
)
def test_metric_name_regex(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
