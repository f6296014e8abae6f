"""docker-compose.yml and the files it mounts, checked without a Docker engine: structure, start-up
order, health checks, localhost ports, secrets from .env, names the code reads, Trino's catalog, the
sample-data bootstrap, and both workspace files loading the same code location."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlglot
import trino
import yaml
from sqlglot import exp

from report_pipeline.local_trino import LocalTrino
from report_pipeline.settings import CODE_LOCATION, DAGSTER_YAML, SETTINGS
from report_pipeline.trino.sql import QualifiedName
from report_pipeline.trino_server import TRINO_VERSION
from report_pipeline.trino_server.server import CATALOG_FILES
from report_pipeline_tests.conftest import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "report_pipeline" / "deploy"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ONE_SHOT = {"trino-bootstrap"}
APP_SERVICES = {"code-location", "dagster-webserver", "dagster-daemon", "metrics", "pgbouncer"}
ENV_EXAMPLE = dict(
    line.split("=", 1)
    for line in (ROOT / ".env.example").read_text().splitlines()
    if line and not line.startswith("#")
)


def java_properties(path: Path) -> dict[str, str]:
    entries = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith(("#", "!")):
            key, separator, value = line.partition("=")
            assert separator, f"{path.name}: not a key=value line: {line!r}"
            entries[key.strip()] = value.strip()
    return entries


def test_the_stack_has_every_part() -> None:
    assert set(SERVICES) == {
        "postgres",
        "pgbouncer",
        "trino",
        "trino-bootstrap",
        "code-location",
        "dagster-webserver",
        "dagster-daemon",
        "metrics",
        "prometheus",
        "grafana",
        "loki",
        "alloy",
    }


def test_images_are_pinned() -> None:
    for name, service in SERVICES.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), name


def test_every_long_running_service_has_a_health_check() -> None:
    for name, service in SERVICES.items():
        if name not in ONE_SHOT:
            assert service.get("healthcheck", {}).get("test"), name


def test_start_up_order_waits_for_health_not_just_start() -> None:
    for name, service in SERVICES.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            if dependency in ONE_SHOT:
                assert rule["condition"] == "service_completed_successfully", name
            else:
                assert rule["condition"] == "service_healthy", name
                assert "healthcheck" in SERVICES[dependency]
    # the code location starts only once the sample data is there, the UI and daemon once it serves
    assert "trino-bootstrap" in SERVICES["code-location"]["depends_on"]
    assert "code-location" in SERVICES["dagster-webserver"]["depends_on"]
    assert "code-location" in SERVICES["dagster-daemon"]["depends_on"]


def test_every_published_port_is_bound_to_localhost() -> None:
    ports = [
        (name, port) for name, service in SERVICES.items() for port in service.get("ports", [])
    ]
    assert len(ports) >= 6
    for name, port in ports:
        assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_every_file_the_stack_mounts_or_builds_from_exists() -> None:
    mounts = [
        volume.split(":")[0]
        for service in SERVICES.values()
        for volume in service.get("volumes", [])
        if volume.startswith("./")
    ]
    assert len(mounts) >= 8
    for source in mounts:
        assert (ROOT / source).exists(), source
    build = COMPOSE["x-app"]["build"]
    dockerfile = ROOT / build["context"] / build["dockerfile"]
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY"):
            *sources, _target = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_every_variable_the_compose_file_reads_is_documented_in_env_example() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text)) - {
        "ENV"
    }  # ${ENV:...}: Trino's, in a comment
    assert used and used <= set(ENV_EXAMPLE), used - set(ENV_EXAMPLE)
    required = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*):\?", text))
    assert {
        "POSTGRES_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
    } <= required  # secrets never have defaults
    assert (ROOT / ".gitignore").read_text().splitlines().count(".env") == 1


def code_reads(name: str) -> bool:
    sources = [p.read_text() for p in (ROOT / "report_pipeline").rglob("*.py")] + [
        (ROOT / "dagster.yaml").read_text()
    ]
    return any(re.search(rf"""["'\s]{name}["'\s}}]""", source) for source in sources)


def test_the_app_environment_sets_only_names_the_code_reads() -> None:
    names = set(COMPOSE["x-app"]["environment"]) | set(SERVICES["dagster-daemon"]["environment"])
    unknown = {name for name in names if not code_reads(name) and name != "TRINO_POOL_LIMIT"}
    assert unknown == set()
    assert "TRINO_POOL_LIMIT" in SERVICES["dagster-daemon"]["command"][-1]


def test_the_app_environment_sets_everything_the_code_location_needs() -> None:
    needed = {
        setting.name
        for setting in SETTINGS
        if setting.required and setting.used_by.startswith((CODE_LOCATION, DAGSTER_YAML))
    }
    assert {"TRINO_HOST", "REPORT_PIPELINE_LEDGER_URL", "DAGSTER_PG_HOST"} <= needed
    assert needed <= set(COMPOSE["x-app"]["environment"])


def test_dagster_storage_goes_through_pgbouncer_and_the_ledger_directly() -> None:
    environment = COMPOSE["x-app"]["environment"]
    pgbouncer = SERVICES["pgbouncer"]
    command = pgbouncer["command"]
    assert command[:2] == ["report-pipeline", "pgbouncer"]
    assert (environment["DAGSTER_PG_HOST"], environment["DAGSTER_PG_PORT"]) == (
        "pgbouncer",
        command[command.index("--listen-port") + 1],
    )
    assert (pgbouncer["environment"]["PGHOST"], pgbouncer["environment"]["PGPORT"]) == (
        "postgres",
        "5432",
    )
    assert "@postgres:5432/" in environment["REPORT_PIPELINE_LEDGER_URL"]
    assert "pgbouncer" in SERVICES["code-location"]["depends_on"]
    # the image the service runs installs PgBouncer
    assert "pgbouncer" in (DEPLOY / "Dockerfile").read_text()


def test_app_services_share_one_image_and_environment() -> None:
    for name in APP_SERVICES:
        assert SERVICES[name]["image"] == COMPOSE["x-app"]["image"], name
        assert set(COMPOSE["x-app"]["environment"]) <= set(SERVICES[name]["environment"]), name


CATALOGS = DEPLOY / "trino" / "catalog"


def test_the_stack_runs_the_trino_release_the_tests_run() -> None:
    for name in ("trino", "trino-bootstrap"):
        assert SERVICES[name]["image"] == f"trinodb/trino:{TRINO_VERSION}", name


def test_the_stack_mounts_every_catalog_the_tests_use() -> None:
    mounted = {
        Path(v.split(":")[0]).name: v.split(":")[1]
        for v in SERVICES["trino"]["volumes"]
        if v.startswith("./report_pipeline/deploy/trino/catalog/")
    }
    assert mounted == {name: f"/etc/trino/catalog/{name}" for name in CATALOG_FILES}
    assert {p.name for p in CATALOGS.glob("*.properties")} == set(CATALOG_FILES)


@pytest.mark.parametrize("name", CATALOG_FILES)
def test_each_catalog_gets_its_settings_and_secrets_from_the_environment(name) -> None:
    text = (CATALOGS / name).read_text()
    variables = set(re.findall(r"\$\{ENV:([A-Z_]+)\}", text))
    assert variables <= set(SERVICES["trino"]["environment"])
    properties = java_properties(CATALOGS / name)
    assert not [k for k, v in properties.items() if "password" in k and "${ENV:" not in v]


def test_the_catalog_databases_are_created_on_first_start() -> None:
    init = (DEPLOY / "postgres" / "init.sql").read_text()
    for variable in ("LAKE_JDBC_URL", "ICEBERG_CATALOG_JDBC_URL"):
        url = SERVICES["trino"]["environment"][variable]
        assert re.fullmatch(r"jdbc:postgresql://postgres:5432/\w+", url)
        assert f"CREATE DATABASE {url.rsplit('/', 1)[1]};" in init
    assert "iceberg_catalog.sql" in init
    # the code location is told to use the catalog the reports' tables live in
    assert java_properties(CATALOGS / "lake.properties")["connector.name"] == "postgresql"
    assert COMPOSE["x-app"]["environment"]["TRINO_CATALOG"] == "lake"


def bootstrap_statements(catalog: str) -> list[str]:
    """bootstrap.sql's statements, its catalog renamed on the parsed form (the real Trino's `lake`
    already holds the session's sample data)."""
    parsed = sqlglot.parse((DEPLOY / "trino" / "bootstrap.sql").read_text(), read="trino")
    statements = [s for s in parsed if s is not None]
    for statement in statements:
        for table in statement.find_all(exp.Table):
            if table.catalog == "lake":
                table.set("catalog", exp.to_identifier(catalog))
    return [s.sql(dialect="trino") for s in statements]


def test_the_bootstrap_builds_the_local_engines_sample_warehouse_on_real_trino(real_trino) -> None:
    with trino.dbapi.connect(
        host=real_trino.host,
        port=real_trino.port,
        user="bootstrap",
        catalog="memory",
        request_timeout=120,
    ) as connection:
        cursor = connection.cursor()
        before = _schemas(cursor, "memory")
        try:
            for _ in range(2):  # a restarted stack runs it again: nothing changes, nothing fails
                for statement in bootstrap_statements("memory"):
                    cursor.execute(statement)
                    cursor.fetchall()
            built = {t: _rows(cursor, f"memory.analytics.{t}") for t in ("users", "events")}
            bootstrap_columns = {t: _columns(cursor, "memory", t) for t in ("users", "events")}
        finally:  # the session's real Trino is shared: later tests see its catalogs as they were
            _drop_schemas(cursor, "memory", _schemas(cursor, "memory") - before)
    # the local engine's own sample warehouse
    with (
        LocalTrino(sample_events=50_000) as engine,
        trino.dbapi.connect(
            host=engine.host, port=engine.port, user="x", catalog=engine.catalog
        ) as c,
    ):
        cursor = c.cursor()
        assert bootstrap_columns == {
            t: _columns(cursor, engine.catalog, t) for t in ("users", "events")
        }
        expected = {
            table: _rows(cursor, f"{engine.catalog}.analytics.{table}")
            for table in ("users", "events")
        }
    assert len(built["events"]) == 50_000 and len(built["users"]) == 1000
    assert built == expected


def _schemas(cursor, catalog: str) -> set[str]:
    cursor.execute(f"SELECT schema_name FROM {catalog}.information_schema.schemata")
    return {row[0] for row in cursor.fetchall()}


def _drop_schemas(cursor, catalog: str, schemas: set[str]) -> None:
    for schema in schemas:
        cursor.execute(
            f"SELECT table_name FROM {catalog}.information_schema.tables WHERE table_schema = ?",
            [schema],
        )
        for (table,) in cursor.fetchall():
            # validated identifiers (QualifiedName refuses anything but lower-case words), quoted
            cursor.execute(f"DROP TABLE {QualifiedName(catalog, schema, table).quoted()}")
            cursor.fetchall()
        catalog_and_schema = QualifiedName(catalog, schema, "unused").quoted().rsplit(".", 1)[0]
        cursor.execute(f"DROP SCHEMA {catalog_and_schema}")
        cursor.fetchall()


def _rows(cursor, table: str) -> list[list]:
    cursor.execute(f"SELECT * FROM {table} ORDER BY 1")
    return cursor.fetchall()


def _columns(cursor, catalog: str, table: str) -> list[str]:
    cursor.execute(
        f"SELECT column_name FROM {catalog}.information_schema.columns "
        "WHERE table_schema = 'analytics' AND table_name = ? ORDER BY ordinal_position",
        [table],
    )
    return [row[0] for row in cursor.fetchall()]


def test_prometheus_scrapes_the_metrics_service_and_grafana_reads_that_prometheus() -> None:
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    [target] = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    command = SERVICES["metrics"]["command"]
    assert target == f"metrics:{command[command.index('--port') + 1]}"
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "report_pipeline.json").read_text())
    metric_panels = [p for p in dashboard["panels"] if p["datasource"]["type"] == "prometheus"]
    assert {p["datasource"]["uid"] for p in metric_panels} == {datasource["uid"]}
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "report_pipeline.yml").read_text()
    )["providers"][0]
    assert any(
        v.split(":")[1] == provider["options"]["path"]
        for v in SERVICES["grafana"]["volumes"]
        if v.startswith("./report_pipeline/deploy/grafana/dashboards")
    )


# --- the two workspace files -------------------------------------------------------------------
def validate(workspace: Path, home: Path) -> subprocess.CompletedProcess:
    dagster = Path(sys.executable).parent / "dagster"
    return subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(workspace)],
        cwd=ROOT,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_both_workspace_files_name_the_same_location_and_module() -> None:
    [local] = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"]
    [stack] = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"]
    assert (
        local["python_module"]["location_name"]
        == stack["grpc_server"]["location_name"]
        == "report_pipeline"
    )
    command = SERVICES["code-location"]["command"]
    assert command[command.index("-m") + 1] == local["python_module"]["module_name"]
    assert (stack["grpc_server"]["host"], str(stack["grpc_server"]["port"])) == (
        "code-location",
        command[command.index("-p") + 1],
    )


def test_the_local_workspace_loads(tmp_path: Path) -> None:
    result = validate(ROOT / "workspace.yaml", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "report_pipeline" in result.stdout + result.stderr


def test_the_stack_workspace_loads_from_a_code_server_started_like_the_compose_service(
    tmp_path: Path,
) -> None:
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "dagster"),
        *SERVICES["code-location"]["command"][1:],
    ]
    command[command.index("-h") + 1], command[command.index("-p") + 1] = "127.0.0.1", str(port)
    server = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
        workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=port)
        path = tmp_path / "workspace.yaml"
        path.write_text(yaml.safe_dump(workspace))
        health = [
            str(Path(sys.executable).parent / "dagster"),
            "api",
            "grpc-health-check",
            "-p",
            str(port),
        ]
        wait_until(
            lambda: subprocess.run(health, capture_output=True).returncode == 0,
            timeout=120,
            interval=1,
        )
        result = validate(path, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "report_pipeline" in result.stdout + result.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
