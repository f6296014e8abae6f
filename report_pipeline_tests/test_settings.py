"""The environment variables: declared once, read when used, parsed with one clear line per mistake,
secrets kept out of logs and reprs, and the README's table generated from the declarations."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from report_pipeline import settings
from report_pipeline.observability import logging as project_logging
from report_pipeline.postgres import PostgresSettings
from report_pipeline.settings import (
    README_BEGIN,
    SECRETS,
    SETTINGS,
    LogFormat,
    Setting,
    SettingError,
    configuration_table,
    postgres_environment,
    with_configuration_table,
)
from report_pipeline.trino_server import cache_dir

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No declared variable set; HOME is a temporary folder (returned)."""
    for setting in SETTINGS:
        monkeypatch.delenv(setting.name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def python(code: str, **env: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter, with no declared variable set but those given."""
    declared = {setting.name for setting in SETTINGS}
    environment = {k: v for k, v in os.environ.items() if k not in declared} | env
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        cwd=ROOT,
    )


# --- the README ----------------------------------------------------------------------------------


def test_the_readme_configuration_table_is_generated_from_the_settings() -> None:
    readme = README.read_text()
    assert README_BEGIN in readme
    assert with_configuration_table(readme) == readme, (
        "README.md's configuration table is out of date: regenerate it with "
        "`python -m report_pipeline.settings --readme README.md`"
    )


def test_one_command_prints_the_table_or_rewrites_it_in_a_readme(tmp_path: Path) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "report_pipeline.settings"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert printed.stdout == configuration_table() + "\n"
    stale = tmp_path / "README.md"
    stale.write_text(f"# title\n\n{README_BEGIN}\n| old | table |\n{settings.README_END}\n\nmore\n")
    subprocess.run(
        [sys.executable, "-m", "report_pipeline.settings", "--readme", str(stale)],
        check=True,
        timeout=60,
    )
    assert stale.read_text() == (
        f"# title\n\n{README_BEGIN}\n{configuration_table()}\n{settings.README_END}\n\nmore\n"
    )


def test_every_variable_is_declared_once_and_consistently() -> None:
    names = [setting.name for setting in SETTINGS]
    assert len(names) == len(set(names))
    for setting in SETTINGS:
        assert not (setting.required and setting.default), setting.name
        assert "|" not in setting.description + setting.used_by, setting.name  # the table's cells


def test_the_secrets_are_the_credentials_and_the_urls_that_carry_them() -> None:
    assert {s.name for s in SECRETS} == {
        "TRINO_PASSWORD",
        "TRINO_JWT",
        "REPORT_PIPELINE_LEDGER_URL",
        "REPORT_PIPELINE_ALERT_WEBHOOK_URL",
        "DAGSTER_PG_PASSWORD",
        "PGPASSWORD",
    }


def test_dagster_yaml_reads_only_declared_variables() -> None:
    text = (ROOT / "dagster.yaml").read_text()
    read = set(re.findall(r"\{env: (\w+)\}", text))
    assert read and read <= {setting.name for setting in SETTINGS}
    yaml.safe_load(text)  # the pattern above read a valid file


def test_no_other_module_reads_the_environment() -> None:
    read = re.compile(r"os\.getenv\(|os\.environ\.get\(|os\.environ\.setdefault\(|os\.environ\[")
    readers = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "report_pipeline").rglob("*.py")
        if path.name != "settings.py" and read.search(path.read_text())
    }
    assert readers == set()


# --- defaults and parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (settings.TRINO_HOST, None),
        (settings.TRINO_PASSWORD, None),
        (settings.TRINO_HTTP_SCHEME, "http"),
        (settings.TRINO_VERIFY, "true"),
        (settings.TRINO_CLIENT_TAGS, []),
        (settings.TRINO_SESSION_PROPERTIES, {}),
        (settings.LEDGER_URL, None),
        (settings.REPORTS_DIR, None),
        (settings.SWEEP_MIN_AGE_SECONDS, 3600.0),
        (settings.ALERT_WEBHOOK_URL, None),
        (settings.ALERT_FORMAT, "slack"),
        (settings.DAGSTER_UI_URL, "http://127.0.0.1:3000"),
        (settings.GRAFANA_URL, "http://127.0.0.1:3001"),
        (settings.STUCK_AFTER_SECONDS, 900.0),
        (settings.LOG_FORMAT, None),
        (settings.PGHOST, "127.0.0.1"),
        (settings.PGPORT, 5432),
        (settings.PGUSER, "report_pipeline"),
        (settings.PGPASSWORD, "report_pipeline"),
        (settings.CACHE, None),
    ],
    ids=lambda value: value.name if isinstance(value, Setting) else None,
)
def test_unset_or_empty_means_the_default(
    setting: Setting[Any], expected: Any, clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert setting.read() == expected
    monkeypatch.setenv(setting.name, "")
    assert setting.read() == expected


def test_defaults_of_the_local_postgres_and_the_trino_cache(clean_environment: Path) -> None:
    assert PostgresSettings.from_env() == PostgresSettings(
        "127.0.0.1", 5432, "report_pipeline", "report_pipeline"
    )
    assert cache_dir() == clean_environment / ".cache" / "report_pipeline"


def test_the_trino_cache_follows_xdg_then_its_own_variable(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "~/xdg")
    assert cache_dir() == clean_environment / "xdg" / "report_pipeline"
    monkeypatch.setenv("REPORT_PIPELINE_CACHE", "/srv/cache")
    assert cache_dir() == Path("/srv/cache")


def test_a_required_variable_that_is_unset_is_named(clean_environment: Path) -> None:
    with pytest.raises(SettingError, match=r"^REPORT_PIPELINE_LEDGER_URL is not set$"):
        settings.LEDGER_URL.value()


@pytest.mark.parametrize(
    ("setting", "text", "expected"),
    [
        (settings.TRINO_CLIENT_TAGS, " reports, nightly,, ", ["reports", "nightly"]),
        (
            settings.TRINO_SESSION_PROPERTIES,
            "query_max_memory=2GB, iceberg.compression_codec=ZSTD",
            {"query_max_memory": "2GB", "iceberg.compression_codec": "ZSTD"},
        ),
        (settings.PGPORT, "5433", 5433),
        (settings.SWEEP_MIN_AGE_SECONDS, "0", 0.0),
        (settings.STUCK_AFTER_SECONDS, "1.5", 1.5),
        (settings.LOG_FORMAT, "Console", LogFormat.CONSOLE),
        (settings.REPORTS_DIR, "/srv/reports", Path("/srv/reports")),
    ],
    ids=lambda value: value.name if isinstance(value, Setting) else None,
)
def test_values_are_parsed_when_read(
    setting: Setting[Any], text: str, expected: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(setting.name, text)
    assert setting.read() == expected


@pytest.mark.parametrize(
    ("setting", "text", "reason"),
    [
        (settings.PGPORT, "fivefour", "expected a port number (1-65535), got 'fivefour'"),
        (settings.TRINO_PORT, "70000", "expected a port number (1-65535), got '70000'"),
        (settings.SWEEP_MIN_AGE_SECONDS, "-1", "expected a number of seconds, got '-1'"),
        (settings.STUCK_AFTER_SECONDS, "nan", "expected a number of seconds, got 'nan'"),
        (settings.STUCK_AFTER_SECONDS, "0", "must be more than 0 seconds"),
        (settings.LOG_FORMAT, "xml", "expected json or console, got 'xml'"),
        (
            settings.TRINO_SESSION_PROPERTIES,
            "a=1,Bad-Name=2",
            "expected name=value, got 'Bad-Name=2'",
        ),
    ],
    ids=lambda value: value.name if isinstance(value, Setting) else None,
)
def test_a_value_that_does_not_parse_is_one_line_naming_the_variable(
    setting: Setting[Any], text: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(setting.name, text)
    with pytest.raises(SettingError) as error:
        setting.read()
    assert str(error.value) == f"{setting.name}: {reason}"


def test_the_command_says_which_variable_is_wrong_in_one_line() -> None:
    result = python(
        "from report_pipeline.cli import main; main(['metrics', '--port', '1'])",
        REPORT_PIPELINE_STUCK_AFTER_SECONDS="soon",
        REPORT_PIPELINE_LEDGER_URL="sqlite://",
    )
    assert (result.returncode, result.stderr) == (
        1,
        "error: REPORT_PIPELINE_STUCK_AFTER_SECONDS: expected a number of seconds, got 'soon'\n",
    )


def test_the_code_location_does_not_load_with_a_value_that_does_not_parse() -> None:
    result = python(
        "import report_pipeline.definitions", REPORT_PIPELINE_SWEEP_MIN_AGE_SECONDS="an hour"
    )
    assert result.returncode != 0
    assert (
        "SettingError: REPORT_PIPELINE_SWEEP_MIN_AGE_SECONDS: expected a number of seconds, "
        "got 'an hour'" in result.stderr
    )


# --- secrets -------------------------------------------------------------------------------------


def test_a_secret_that_does_not_parse_is_named_not_quoted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret_port = Setting("TEST_SECRET_PORT", int, None, "a port", "tests", secret=True)
    monkeypatch.setenv("TEST_SECRET_PORT", "hunter2")
    with pytest.raises(SettingError) as error:
        secret_port.read()
    assert str(error.value) == "TEST_SECRET_PORT: not a usable value"


def test_the_local_postgres_password_stays_out_of_its_repr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGPASSWORD", "hunter2-pg")
    server = PostgresSettings.from_env()
    assert server.password == "hunter2-pg" and "hunter2" not in repr(server)


def test_a_secret_logged_under_its_variable_name_is_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(project_logging, "_configured", False)
    monkeypatch.setattr(sys, "stderr", stream)
    try:
        project_logging.configure_logging(LogFormat.JSON)
        structlog.get_logger("t").info("settings", **{s.name: "hunter2" for s in SECRETS})
        line = json.loads(stream.getvalue().strip().splitlines()[-1])
    finally:
        structlog.reset_defaults()
        monkeypatch.setattr(project_logging, "_configured", False)
    assert all(line[s.name] == "***" for s in SECRETS)
    assert "hunter2" not in stream.getvalue()


# --- one server, three descriptions --------------------------------------------------------------


def test_dagster_storage_and_the_ledger_are_derived_from_one_postgres_database() -> None:
    server = PostgresSettings("db.example", 5433, "reports", "pw")
    environment = postgres_environment(server, "pipeline")
    assert environment == {
        "DAGSTER_PG_HOST": "db.example",
        "DAGSTER_PG_PORT": "5433",
        "DAGSTER_PG_USERNAME": "reports",
        "DAGSTER_PG_PASSWORD": "pw",
        "DAGSTER_PG_DB": "pipeline",
        "REPORT_PIPELINE_LEDGER_URL": "postgresql+psycopg2://reports:pw@db.example:5433/pipeline",
    }
    dagster_yaml = set(re.findall(r"\{env: (\w+)\}", (ROOT / "dagster.yaml").read_text()))
    assert set(environment) == dagster_yaml | {settings.LEDGER_URL.name}


# --- read when used, not when imported -----------------------------------------------------------


def test_the_code_location_resolves_trino_and_its_secrets_when_a_run_sets_up() -> None:
    """The code location loads with no Trino, ledger or secret variable set; a run's resources see
    the environment as it is when the run starts."""
    code = """
import json, os
import dagster as dg
from report_pipeline.definitions import defs
os.environ.update(TRINO_HOST="late.example", TRINO_PORT="8443", TRINO_USER="runner",
                  TRINO_CATALOG="iceberg", TRINO_PASSWORD="set-after-load")
with dg.build_resources({"trino": defs.resources["trino"]}) as resources:
    s = resources.trino.settings()
print(json.dumps([s.host, s.port, s.user, s.catalog, s.password]))
"""
    result = python(code, TRINO_HTTP_SCHEME="https")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) == [
        "late.example",
        8443,
        "runner",
        "iceberg",
        "set-after-load",
    ]


@pytest.mark.parametrize("log_format", list(LogFormat))
def test_loading_the_code_location_configures_its_logging(log_format: LogFormat) -> None:
    """The code server and each run and step process start by loading the code location: their
    saga lines come out in REPORT_PIPELINE_LOG_FORMAT without any resource being set up."""
    result = python(
        "import report_pipeline.definitions, structlog\n"
        "structlog.get_logger('t').info('loaded', saga_id='s-1')",
        REPORT_PIPELINE_LOG_FORMAT=log_format.value,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    if log_format is LogFormat.JSON:
        assert json.loads(last) | {"timestamp": "-"} == {
            "event": "loaded",
            "saga_id": "s-1",
            "level": "info",
            "timestamp": "-",
        }
    else:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", last)  # without the colours
        assert "loaded" in plain and "saga_id=s-1" in plain and not plain.startswith("{")
