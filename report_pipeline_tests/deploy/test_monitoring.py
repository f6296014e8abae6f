"""The Prometheus alert rules and the Grafana dashboard: valid, tested with promtool, and built only
on metrics the project exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from report_pipeline import settings
from report_pipeline.observability import links
from report_pipeline.observability.metrics import LedgerCollector
from report_pipeline.saga.ledger import SqlLedger

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "report_pipeline" / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = RULES.parent / "alerts_test.yml"
PROMETHEUS_CONFIG = RULES.parent / "prometheus.yml"
README = ROOT / "README.md"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "report_pipeline.json"
# Grafana's variables, replaced by what they stand for when a panel is drawn
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$report": ".*"}
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}
PROMETHEUS_OWN = {"up"}  # written by Prometheus for each scrape target


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is missing: `make install` installs Debian's prometheus package, which has it"
        )
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every series name the metrics endpoint can expose (from the real collector)."""
    ledger = SqlLedger(f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.sqlite'}")
    ledger.migrate()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(ledger))
    names: set[str] = set()
    for family in registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(
            family.type, [""]
        )
        names.update(family.name + suffix for suffix in suffixes)
    assert "saga_executions_total" in generate_latest(registry).decode()
    return names


def dashboard_queries() -> list[str]:
    """The dashboard's PromQL (its Loki queries are checked in test_logs_stack.py)."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if target["datasource"]["type"] == "prometheus"
    ]


def rule_queries() -> list[str]:
    return [
        rule["expr"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    ]


def as_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers, ranges, groupings and calls
    removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", as_promql(expr))
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"[A-Za-z_][A-Za-z0-9_]*\s*\(", "(", text)  # function and aggregation names
    return {
        word
        for word in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text)
        if word.lower() not in PROMQL_WORDS
    }


def test_alert_rules_are_valid(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_as_their_unit_tests_specify(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=RULES.parent,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_every_alert_rule_has_a_unit_test() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    }
    tests = yaml.safe_load((RULES.parent / "alerts_test.yml").read_text())["tests"]
    tested = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert alerts == tested


def test_the_required_alerts_exist() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    }
    assert {
        "SagaFailureRateHigh",
        "SagaStuck",
        "SagaNeedsManualIntervention",
        "SagaMetricsEndpointDown",
    } <= alerts


def test_prometheus_config_is_valid_and_loads_the_rules(promtool: str) -> None:
    config = RULES.parent / "prometheus.yml"
    result = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert yaml.safe_load(config.read_text())["rule_files"] == [RULES.name]


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": as_promql(expr)}
                    for i, expr in enumerate(dashboard_queries())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_queries_only_metrics_the_project_exports(exported: set[str]) -> None:
    used = set().union(*(metric_names(expr) for expr in dashboard_queries()))
    assert used - exported - PROMETHEUS_OWN == set()
    assert len(used) >= 10


def test_alert_rules_use_only_metrics_the_project_exports(exported: set[str]) -> None:
    used = set().union(*(metric_names(expr) for expr in rule_queries()))
    assert used - exported - PROMETHEUS_OWN == set()


def test_the_metric_name_reader_finds_names_and_ignores_syntax() -> None:
    assert metric_names(
        'sum by (saga_name) (increase(saga_executions_total{status="x"}[1h])) '
        "/ on (saga_name) max(saga_sagas) > 0 and up == 1"
    ) == {"saga_executions_total", "saga_sagas", "up"}


def test_dashboard_has_the_views_engineers_need() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    titles = " | ".join(p["title"].lower() for p in panels)
    for view in ("success rate", "slowest", "compensations", "stuck", "failed_needs_manual"):
        assert view in titles
    assert any(
        p["type"] == "heatmap" and "saga_step_duration_seconds_bucket" in p["targets"][0]["expr"]
        for p in panels
    )
    assert len({p["id"] for p in panels}) == len(panels)


# --- where each alert leads -----------------------------------------------------------------------


def alert_rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def about_one_report(rule: dict) -> bool:
    """Whether the rule's alerts carry the report (`saga_name`) they are about."""
    return re.search(r"\bby \(saga_name\)", rule["expr"]) is not None


def expected_alerts() -> list[tuple[dict, str, dict, dict]]:
    """Each alert alerts_test.yml expects: its test group, name, labels and annotations."""
    return [
        (test, case["alertname"], expected["exp_labels"], expected["exp_annotations"])
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
        for expected in case["exp_alerts"]
    ]


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a markdown file's headings: the text in lower case, characters
    other than letters, digits, `_`, `-` and spaces dropped, spaces as `-`; a repeated anchor gets
    `-1`, `-2`... Lines in fenced code blocks are not headings."""
    anchors: set[str] = set()
    seen: Counter[str] = Counter()
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        heading = None if fenced else re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)
        if heading:
            anchor = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            anchors.add(f"{anchor}-{seen[anchor]}" if seen[anchor] else anchor)
            seen[anchor] += 1
    return anchors


def test_the_anchor_reader_follows_githubs_rules() -> None:
    markdown = "# Runbook\n## A `x` / b?\n```sh\n# not a heading\n```\n### Runbook\n"
    assert github_anchors(markdown) == {"runbook", "a-x--b", "runbook-1"}


def test_every_alert_rule_links_its_runbook_and_the_dashboard() -> None:
    for rule in alert_rules():
        links_of = rule["annotations"]
        assert links_of["runbook_url"] == (
            "{{ $externalLabels.runbook_base }}#" + rule["alert"].lower()
        ), rule["alert"]
        assert links_of["dashboard_url"].startswith(
            "{{ $externalLabels.grafana_url }}" + f"/d/{links.DASHBOARD_UID}/"
        ), rule["alert"]


def test_every_runbook_anchor_is_a_heading_of_the_readme() -> None:
    anchors = {rule["annotations"]["runbook_url"].split("#", 1)[1] for rule in alert_rules()}
    assert anchors - github_anchors(README.read_text()) == set(), (
        "README.md needs a heading per alert in its Runbook (`### <alert name>`)"
    )


def test_alerts_about_one_report_filter_the_dashboard_to_it() -> None:
    for rule in alert_rules():
        filtered = (
            "var-report={{ $labels.saga_name | urlquery }}" in rule["annotations"]["dashboard_url"]
        )
        assert filtered == about_one_report(rule), rule["alert"]


def test_the_rule_tests_expect_the_links_the_alerts_code_builds() -> None:
    """promtool checks the rules render these; they are what observability/links.py builds from
    the same base URLs, so a Prometheus alert and a webhook alert lead to the same places."""
    for test, name, labels, expected in expected_alerts():
        bases = test["external_labels"]
        report = labels.get("saga_name")
        assert expected["dashboard_url"] == links.dashboard_url(
            bases["grafana_url"], report=report
        ), name
        assert expected["runbook_url"] == f"{bases['runbook_base']}#{name.lower()}", name


def test_prometheus_sets_every_external_label_the_rules_read() -> None:
    read = set(re.findall(r"\$externalLabels\.(\w+)", RULES.read_text()))
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert read == {"grafana_url", "runbook_base"}
    assert read <= set(config["global"]["external_labels"])
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        assert read <= set(test["external_labels"]), test["name"]


def test_prometheus_links_to_the_grafana_the_webhook_alerts_link_to() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["global"]["external_labels"]["grafana_url"] == settings.GRAFANA_URL.default


def test_the_dashboard_the_links_open_has_their_uid_and_report_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == links.DASHBOARD_UID
    assert links.REPORT_VARIABLE in {v["name"] for v in dashboard["templating"]["list"]}
