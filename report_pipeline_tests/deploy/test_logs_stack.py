"""Logs in the stack: Alloy ships the Dagster services' lines to Loki under the one stream label
`service`, Grafana reads that Loki, and the dashboard's log panels and links query it.

Checked without Docker: the compose services, Loki's and Alloy's configuration (Alloy's read by
Alloy's own parser), the dashboard's datasources, variables and links, every LogQL query of the
dashboard and the README parsed by Loki's own parser, and, on the JSON lines of a real report run
that fails and whose undo fails, that every field those queries read is a field the lines carry,
with the values the queries look for."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from report_pipeline.fault_proxy import FaultProxy
from report_pipeline.local_trino import Fault, LocalTrino
from report_pipeline.observability.links import (
    DASHBOARD_UID,
    LOG_SERVICES,
    LOG_STREAM_SELECTOR,
    LOKI_DATASOURCE_UID,
    PROMETHEUS_DATASOURCE_UID,
    SAGA_VARIABLE,
)
from report_pipeline_tests.builders import start_saga_config
from report_pipeline_tests.deploy.go_checkers import CheckerUnavailable, checker
from report_pipeline_tests.deploy.logql import LOKI_OWN_LABELS, Query, interpolate, variables_in
from report_pipeline_tests.deploy.logql import parse as parse_logql
from report_pipeline_tests.orchestration.conftest import (
    PARAMETERS,
    REPORTS,
    STEP_STATEMENTS,
    STEP_TIMEOUT_SECONDS,
    write_test_reports,
)
from report_pipeline_tests.orchestration.statements import statement_pattern

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "report_pipeline" / "deploy"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
LOKI_CONFIG = DEPLOY / "loki" / "loki.yml"
ALLOY_CONFIG = DEPLOY / "alloy" / "config.alloy"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources"
DASHBOARD_FILE = DEPLOY / "grafana" / "dashboards" / "report_pipeline.json"
DASHBOARD = json.loads(DASHBOARD_FILE.read_text())
README = ROOT / "README.md"
# A line of an identifier field (a saga's, a run's, a statement's) in the README is an example.
IDENTIFIERS = {"saga_id", "run_id", "query_id"}
# Grafana's own values for its built-in variables, as a panel is drawn.
GRAFANA_BUILT_INS = {"__interval": "1m", "__range": "1h", "__rate_interval": "1m"}


# --- compose ------------------------------------------------------------------------------------
@pytest.mark.parametrize("service", ["loki", "alloy"])
def test_loki_and_alloy_run_exact_releases(service: str) -> None:
    image = SERVICES[service]["image"]
    assert re.fullmatch(rf"grafana/{service}:v?\d+\.\d+\.\d+", image), image


@pytest.mark.parametrize("service", ["loki", "alloy"])
def test_loki_and_alloy_restart_and_keep_their_data_on_a_volume(service: str) -> None:
    assert SERVICES[service]["restart"] == "unless-stopped"
    named = [v.split(":")[0] for v in SERVICES[service]["volumes"] if not v.startswith(("./", "/"))]
    assert named and set(named) <= set(COMPOSE["volumes"])


def test_loki_is_published_on_localhost_only_and_alloy_not_at_all() -> None:
    assert SERVICES["loki"]["ports"] == ["127.0.0.1:${LOKI_PORT:-3100}:3100"]
    assert "ports" not in SERVICES["alloy"]


def test_alloy_and_grafana_start_once_loki_is_healthy() -> None:
    for service in ("alloy", "grafana"):
        assert SERVICES[service]["depends_on"]["loki"] == {"condition": "service_healthy"}


def test_alloy_reads_the_docker_socket_read_only() -> None:
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in SERVICES["alloy"]["volumes"]


def test_the_health_checks_ask_each_service_whether_it_is_ready() -> None:
    loki_port = yaml.safe_load(LOKI_CONFIG.read_text())["server"]["http_listen_port"]
    assert SERVICES["loki"]["healthcheck"]["test"][-1] == f"http://127.0.0.1:{loki_port}/ready"
    alloy = SERVICES["alloy"]
    listen = next(a for a in alloy["command"] if a.startswith("--server.http.listen-addr="))
    check = alloy["healthcheck"]["test"][-1]
    assert f"/dev/tcp/{listen.split('=')[1].replace(':', '/')}" in check and "/-/ready" in check


def test_alloy_runs_the_mounted_config() -> None:
    mounted = {v.split(":")[1]: v.split(":")[0] for v in SERVICES["alloy"]["volumes"]}
    assert (ROOT / mounted[SERVICES["alloy"]["command"][-1]]).resolve() == ALLOY_CONFIG


def test_loki_runs_the_mounted_config() -> None:
    mounted = {v.split(":")[1]: v.split(":")[0] for v in SERVICES["loki"]["volumes"]}
    [flag] = SERVICES["loki"]["command"]
    assert (ROOT / mounted[flag.removeprefix("-config.file=")]).resolve() == LOKI_CONFIG


# --- Loki's configuration -----------------------------------------------------------------------
LOKI = yaml.safe_load(LOKI_CONFIG.read_text())


def test_loki_is_one_process_storing_on_the_filesystem_with_the_tsdb_v13_schema() -> None:
    assert LOKI["common"]["replication_factor"] == 1
    assert LOKI["common"]["ring"]["kvstore"]["store"] == "inmemory"
    assert set(LOKI["common"]["storage"]) == {"filesystem"}
    [period] = LOKI["schema_config"]["configs"]
    assert (period["store"], period["object_store"], period["schema"]) == (
        "tsdb",
        "filesystem",
        "v13",
    )
    # what it stores is on the loki-data volume
    assert any(v.endswith(f":{LOKI['common']['path_prefix']}") for v in SERVICES["loki"]["volumes"])


def test_loki_deletes_lines_older_than_its_retention_period() -> None:
    assert LOKI["compactor"]["retention_enabled"] is True
    assert LOKI["compactor"]["delete_request_store"] == "filesystem"
    assert re.fullmatch(r"\d+h", LOKI["limits_config"]["retention_period"])


def test_loki_derives_no_stream_label_or_level_of_its_own() -> None:
    assert LOKI["limits_config"]["discover_service_name"] == []
    assert LOKI["limits_config"]["discover_log_levels"] is False


# --- Alloy's configuration, as Alloy's parser reads it ------------------------------------------
@dataclass(frozen=True)
class Component:
    name: str
    label: str
    attributes: dict[str, Any]
    blocks: list[dict[str, Any]]

    def ref(self, export: str) -> dict[str, str]:
        return {"ref": f"{self.name}.{self.label}.{export}"}


@pytest.fixture(scope="module")
def alloy() -> dict[str, Component]:
    try:
        binary = checker("alloy")
    except CheckerUnavailable as error:
        pytest.fail(str(error), pytrace=False)
    result = subprocess.run(
        [str(binary), str(ALLOY_CONFIG)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"Alloy's parser refuses {ALLOY_CONFIG.name}:\n{result.stderr}"
    blocks = json.loads(result.stdout)[str(ALLOY_CONFIG)]
    components = [Component(b["name"], b["label"], b["attributes"], b["blocks"]) for b in blocks]
    assert len({c.name for c in components}) == len(components)
    return {c.name: c for c in components}


def test_alloy_reads_the_containers_of_this_compose_project_only(alloy) -> None:
    discovery = alloy["discovery.docker"]
    [project_filter] = discovery.blocks
    assert project_filter["attributes"] == {
        "name": "label",
        "values": [f"com.docker.compose.project={COMPOSE['name']}"],
    }
    assert alloy["loki.source.docker"].attributes["host"] == discovery.attributes["host"]
    assert discovery.attributes["host"] == "unix:///var/run/docker.sock"


def test_alloy_ships_exactly_the_log_services_under_the_label_service(alloy) -> None:
    relabel = alloy["discovery.relabel"]
    assert relabel.attributes["targets"] == alloy["discovery.docker"].ref("targets")
    service = ["__meta_docker_container_label_com_docker_compose_service"]
    keep, name = (rule["attributes"] for rule in relabel.blocks)
    assert keep["action"] == "keep" and keep["source_labels"] == service
    assert set(keep["regex"].split("|")) == set(LOG_SERVICES)
    assert name == {"source_labels": service, "target_label": "service"}
    source = alloy["loki.source.docker"]
    assert source.attributes["targets"] == relabel.ref("output")
    # no label is added anywhere else: `service` is the only stream label
    assert "labels" not in source.attributes and "relabel_rules" not in source.attributes
    assert LOG_STREAM_SELECTOR.startswith("{service=~")


def test_alloy_ships_every_line_unchanged_to_the_stacks_loki(alloy) -> None:
    # no loki.process: nothing parses, drops or rewrites a line (Dagster's own are not JSON)
    assert set(alloy) == {
        "discovery.docker",
        "discovery.relabel",
        "loki.source.docker",
        "loki.write",
    }
    write = alloy["loki.write"]
    assert alloy["loki.source.docker"].attributes["forward_to"] == [write.ref("receiver")]
    [endpoint] = write.blocks
    port = LOKI["server"]["http_listen_port"]
    assert endpoint["attributes"]["url"] == f"http://loki:{port}/loki/api/v1/push"


# --- Grafana ------------------------------------------------------------------------------------
def provisioned() -> dict[str, dict]:
    """Every provisioned datasource by uid."""
    return {
        source["uid"]: source
        for path in sorted(DATASOURCES.glob("*.yml"))
        for source in yaml.safe_load(path.read_text())["datasources"]
    }


def walk(node: Any) -> Iterator[dict]:
    """Every object in the dashboard, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def panel(title: str) -> dict:
    [found] = [p for p in DASHBOARD["panels"] if p["title"].startswith(title)]
    return found


def links(panel_: dict, field: str) -> list[dict]:
    [override] = [o for o in panel_["fieldConfig"]["overrides"] if o["matcher"]["options"] == field]
    [prop] = [p for p in override["properties"] if p["id"] == "links"]
    return prop["value"]


def variables() -> dict[str, dict]:
    return {v["name"]: v for v in DASHBOARD["templating"]["list"]}


def test_grafana_provisions_the_stacks_loki_under_the_shared_uid() -> None:
    loki = provisioned()[LOKI_DATASOURCE_UID]
    assert loki["type"] == "loki"
    assert loki["url"] == f"http://loki:{LOKI['server']['http_listen_port']}"
    assert provisioned()[PROMETHEUS_DATASOURCE_UID]["type"] == "prometheus"


def test_every_datasource_the_dashboard_uses_is_provisioned_with_that_type() -> None:
    sources = provisioned()
    used = [n for n in walk(DASHBOARD) if {"type", "uid"} <= set(n) and n is not DASHBOARD]
    used += [
        {"uid": n["datasourceUid"], "type": sources.get(n["datasourceUid"], {}).get("type")}
        for n in walk(DASHBOARD)
        if "datasourceUid" in n
    ]
    assert {u["uid"] for u in used} == {LOKI_DATASOURCE_UID, PROMETHEUS_DATASOURCE_UID}
    for source in used:
        assert sources[source["uid"]]["type"] == source["type"], source


def dashboard_texts() -> list[str]:
    """Every query and link of the dashboard: what Grafana fills variables into."""
    texts = [n["expr"] for n in walk(DASHBOARD) if isinstance(n.get("expr"), str)]
    texts += [n[key] for n in walk(DASHBOARD) if "url" in n for key in ("url", "title") if key in n]
    texts += [v["query"]["query"] for v in variables().values() if isinstance(v["query"], dict)]
    return texts


def test_every_variable_the_dashboard_uses_is_defined_in_its_templating() -> None:
    used = set().union(*(variables_in(text) for text in dashboard_texts()))
    assert {"report", SAGA_VARIABLE, "dagster_url", "__value", "__url_time_range"} <= used
    assert {name for name in used if not name.startswith("__")} <= set(variables())


def test_the_saga_variable_is_a_text_box_on_the_shared_dashboard() -> None:
    assert DASHBOARD["uid"] == DASHBOARD_UID
    assert variables()[SAGA_VARIABLE]["type"] == "textbox"


def test_the_dagster_url_is_where_the_stack_serves_the_dagster_ui() -> None:
    ui = COMPOSE["x-app"]["environment"]["DAGSTER_UI_URL"]
    served = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", ui)  # the port's default
    assert variables()["dagster_url"]["query"] == served == "http://127.0.0.1:3000"


def test_a_saga_id_in_the_failed_saga_table_opens_that_sagas_log_lines() -> None:
    table = panel("Failed steps, failed undos")
    [link] = links(table, "saga_id")
    assert link["url"].startswith(f"/d/{DASHBOARD_UID}?")
    assert f"var-{SAGA_VARIABLE}=${{__value.raw}}" in link["url"]
    # the panel that variable drives
    [target] = panel("Log lines of one saga")["targets"]
    assert f'saga_id="${SAGA_VARIABLE}"' in target["expr"]


def test_a_run_id_in_the_failed_saga_table_opens_the_dagster_run_page() -> None:
    [link] = links(panel("Failed steps, failed undos"), "run_id")
    assert link["url"] == "${dagster_url}/runs/${__value.raw}"


def test_a_report_in_the_slowest_reports_table_opens_its_log_lines() -> None:
    on_dashboard, in_explore = links(panel("Slowest reports"), "saga_name")
    assert on_dashboard["url"].startswith(f"/d/{DASHBOARD_UID}?var-report=${{__value.raw}}")
    internal = in_explore["internal"]
    assert internal["datasourceUid"] == LOKI_DATASOURCE_UID
    assert internal["query"]["expr"].endswith('| json | report="${__value.raw}"')


def test_the_saga_and_error_panels_read_loki_and_the_rest_prometheus() -> None:
    for title in ("Log lines of one saga", "Error lines by report", "Failed steps, failed undos"):
        assert panel(title)["datasource"]["uid"] == LOKI_DATASOURCE_UID
    assert panel("Log lines of one saga")["type"] == "logs"


# --- every LogQL query, parsed by Loki's parser --------------------------------------------------
def dashboard_logql() -> list[str]:
    """The dashboard's LogQL: Loki panels' queries and links that open Loki."""
    queries = [
        target["expr"]
        for p in DASHBOARD["panels"]
        for target in p.get("targets", [])
        if target["datasource"]["uid"] == LOKI_DATASOURCE_UID
    ]
    queries += [
        n["query"]["expr"] for n in walk(DASHBOARD) if n.get("datasourceUid") == LOKI_DATASOURCE_UID
    ]
    return queries


def readme_logql() -> list[str]:
    """Each line of every ```logql block in README.md."""
    blocks = re.findall(r"^```logql\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def parsed(queries: list[str], values: dict[str, str]) -> list[Query]:
    try:
        return parse_logql([interpolate(q, {**GRAFANA_BUILT_INS, **values}) for q in queries])
    except CheckerUnavailable as error:
        pytest.fail(str(error), pytrace=False)


# stand-ins for the dashboard's variables where only the syntax matters
SAMPLE_VALUES = {
    "report": "daily_country_report|weekly_engagement_report",
    SAGA_VARIABLE: "0b5e6c2a-0000-4000-8000-000000000000",
    "__value": "daily_country_report",
}
SOURCES = {"dashboard": dashboard_logql, "README": readme_logql}


def test_the_dashboard_has_log_queries_and_the_readme_a_logql_recipe() -> None:
    assert len(dashboard_logql()) == 4
    assert readme_logql()


@pytest.mark.parametrize("source", SOURCES)
def test_every_logql_query_parses_with_lokis_parser(source: str) -> None:
    assert len(parsed(SOURCES[source](), SAMPLE_VALUES)) == len(SOURCES[source]())


@pytest.mark.parametrize("source", SOURCES)
def test_every_logql_query_selects_the_shipped_streams_by_the_shared_selector(source) -> None:
    [shared] = parsed([LOG_STREAM_SELECTOR], {})
    for query in parsed(SOURCES[source](), SAMPLE_VALUES):
        assert query.selector == shared.selector, query.text


def test_the_metric_queries_group_only_by_fields_parsed_from_the_line() -> None:
    metric = [q for q in parsed(dashboard_logql(), SAMPLE_VALUES) if q.metric]
    assert len(metric) == 2
    for query in metric:
        assert {"parser": "json"} in query.stages
        assert set(query.grouping) <= query.fields()


# --- the queries against the JSON lines of a real run --------------------------------------------
REPORT = "daily_country_report"
FAILING_STEP = "write_report"
UNDO_THAT_FAILS = "create_summary"


@dataclass(frozen=True)
class RunLog:
    """What a report run wrote to stderr, line by line, as Docker hands it to Alloy."""

    lines: list[str]
    saga_id: str
    run_id: str

    def json_lines(self) -> list[dict]:
        return [d for d in map(as_json, self.lines) if d is not None]


def as_json(line: str) -> dict | None:
    """The line's JSON object, None for a line that is not one (Dagster's own)."""
    try:
        document = json.loads(line)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


@pytest.fixture(scope="module")
def failed_run(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_database: dict,
    postgres_url: str,
    local_trino: LocalTrino,
    trino_proxy: FaultProxy,
) -> RunLog:
    """daily_country_report run with `dagster job execute` on the stack's dagster.yaml, as the code
    location runs it (JSON logging), its last step refused by Trino and its first step's undo too:
    the saga fails, compensates, and is handed to a person. Its stderr, line by line."""
    spec = REPORTS[REPORT]
    home = tmp_path_factory.mktemp("dagster-home")
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    config = home / "run.yaml"
    config.write_text(yaml.safe_dump(start_saga_config(PARAMETERS[REPORT])))
    db = postgres_database
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": db["host"],
        "DAGSTER_PG_PORT": str(db["port"]),
        "DAGSTER_PG_USERNAME": db["user"],
        "DAGSTER_PG_PASSWORD": db["password"],
        "DAGSTER_PG_DB": db["dbname"],
        "REPORT_PIPELINE_LEDGER_URL": postgres_url,
        "TRINO_HOST": trino_proxy.host,
        "TRINO_PORT": str(trino_proxy.port),
        "TRINO_USER": "logs-stack-tests",
        "TRINO_CATALOG": local_trino.catalog,
        "REPORT_PIPELINE_LOG_FORMAT": COMPOSE["x-app"]["environment"]["REPORT_PIPELINE_LOG_FORMAT"],
        "REPORT_PIPELINE_REPORTS_DIR": str(
            write_test_reports(tmp_path_factory.mktemp("reports"), STEP_TIMEOUT_SECONDS)
        ),
    }
    undo = statement_pattern(spec, spec.steps[UNDO_THAT_FAILS].compensation[0])
    for pattern, times in ((STEP_STATEMENTS[REPORT][FAILING_STEP], 1), (undo, None)):
        trino_proxy.inject(
            Fault(pattern, "error", times, error_name="PERMISSION_DENIED", message="Access Denied")
        )
    execute = ["job", "execute", "-m", "report_pipeline.definitions", "-j", REPORT]
    try:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "dagster"), *execute, "-c", str(config)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        trino_proxy.faults.clear()
    lines = (result.stdout + result.stderr).splitlines()
    started = [d for d in map(as_json, lines) if d and d.get("new_state") == "RUNNING"]
    assert len(started) == 1, result.stdout + result.stderr
    return RunLog(lines, started[0]["saga_id"], started[0]["run_id"])


# The stream a run's lines are in: runs execute in the code location's container.
STREAM = {"service": "code-location"}


def real_values(run: RunLog) -> dict[str, str]:
    """The dashboard's variables as an engineer sets them to look at this run."""
    return {"report": REPORT, SAGA_VARIABLE: run.saga_id, "__value": REPORT}


def test_a_failed_run_writes_json_lines_beside_dagsters_own(failed_run: RunLog) -> None:
    events = [(d["event"], d["level"]) for d in failed_run.json_lines()]
    assert ("step failed", "warning") in events
    assert ("compensation failed", "error") in events
    assert ("saga needs manual intervention", "error") in events
    dagster_lines = [line for line in failed_run.lines if as_json(line) is None]
    assert any(failed_run.saga_id in line for line in dagster_lines)


@pytest.mark.parametrize("source", SOURCES)
def test_every_field_the_queries_read_is_a_field_of_the_real_json_lines(
    source: str, failed_run: RunLog
) -> None:
    carried = set().union(*(d.keys() for d in failed_run.json_lines()))
    queries = parsed(SOURCES[source](), real_values(failed_run))
    read = set().union(*(q.fields() for q in queries))
    assert read, "the queries read no field"
    assert read - carried == set()


def looked_for(op: str, value: str) -> list[str]:
    """Patterns some line must match for a comparison to be of use: `=` its value; `=~` each
    word of an alternation of words (`a|b c`), any other regular expression as a whole."""
    if op == "=":
        return [re.escape(value)]
    words = value.split("|")
    if all(re.fullmatch(r"[\w .-]+", word) for word in words):
        return [re.escape(word) for word in words]
    return [value]


@pytest.mark.parametrize("source", SOURCES)
def test_every_value_the_queries_look_for_occurs_in_the_real_json_lines(
    source: str, failed_run: RunLog
) -> None:
    documents = failed_run.json_lines()
    for query in parsed(SOURCES[source](), real_values(failed_run)):
        for compare in query.filters():
            name, op, value = compare["name"], compare["op"], compare["value"]
            if op not in ("=", "=~") or name in LOKI_OWN_LABELS:
                continue
            if source == "README" and name in IDENTIFIERS:
                continue  # an example id
            found = {str(d[name]) for d in documents if name in d}
            for wanted in looked_for(op, value):
                assert any(re.fullmatch(wanted, v) for v in found), (
                    f"{query.text}: no line has {name} {op} {value!r} (lines have {sorted(found)})"
                )


def test_each_dashboard_log_query_keeps_lines_of_the_real_run(failed_run: RunLog) -> None:
    for query in parsed(dashboard_logql(), real_values(failed_run)):
        kept = [line for line in failed_run.lines if query.selects(line, STREAM)]
        assert kept, query.text


def test_the_saga_log_panel_shows_the_sagas_json_lines_and_dagster_lines_about_it(
    failed_run: RunLog,
) -> None:
    [target] = panel("Log lines of one saga")["targets"]
    [query] = parsed([target["expr"]], real_values(failed_run))
    kept = [line for line in failed_run.lines if query.selects(line, STREAM)]
    of_saga = [
        line
        for line in failed_run.lines
        if (as_json(line) or {}).get("saga_id") == failed_run.saga_id
    ]
    assert set(of_saga) <= set(kept)
    assert any(as_json(line) is None for line in kept)  # Dagster's, naming the saga
    assert all(failed_run.saga_id in line for line in kept)
    # lines that are not JSON are shown as they are, not flagged as parse errors
    assert {"drop": "| drop __error__,__error_details__"} in query.stages


def test_the_failed_saga_table_lists_the_real_runs_saga_with_its_run(failed_run: RunLog) -> None:
    [target] = panel("Failed steps, failed undos")["targets"]
    [query] = parsed([target["expr"]], real_values(failed_run))
    assert {"saga_id", "run_id"} <= set(query.grouping)
    kept = [as_json(line) or {} for line in failed_run.lines if query.selects(line, STREAM)]
    assert {(d["saga_id"], d["run_id"], d["event"]) for d in kept} >= {
        (failed_run.saga_id, failed_run.run_id, "step failed"),
        (failed_run.saga_id, failed_run.run_id, "compensation failed"),
        (failed_run.saga_id, failed_run.run_id, "saga needs manual intervention"),
    }
