"""The JSON Schema editors use for `report.yaml`: the loader's model, published with the reports."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest
import yaml

from report_pipeline.reporting import REPORTS_DIR
from report_pipeline.reporting.spec import SCHEMA_FILE, SPEC_FILE, report_yaml_schema

PUBLISHED = REPORTS_DIR / SCHEMA_FILE
REPORT_FILES = sorted(REPORTS_DIR.glob(f"*/{SPEC_FILE}"))


def test_the_published_schema_is_the_one_the_command_prints() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "report_pipeline.cli", "reports", "schema"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(printed) == report_yaml_schema()
    assert json.loads(PUBLISHED.read_text()) == report_yaml_schema(), (
        "regenerate it: report-pipeline reports schema > report_pipeline/reports/report.schema.json"
    )


@pytest.mark.parametrize("path", REPORT_FILES, ids=lambda p: p.parent.name)
def test_every_packaged_report_satisfies_the_schema_it_points_at(path) -> None:
    text = path.read_text()
    assert text.splitlines()[0] == f"# yaml-language-server: $schema=../{SCHEMA_FILE}"
    jsonschema.validate(yaml.safe_load(text), report_yaml_schema())


def test_the_fields_the_folder_provides_are_not_in_the_schema() -> None:
    properties = report_yaml_schema()["properties"]
    assert {"name", "folder", "sql"}.isdisjoint(properties)
    assert {"description", "owner", "parameters", "steps"} <= set(report_yaml_schema()["required"])


def test_an_unknown_key_fails_the_schema_as_it_fails_the_loader() -> None:
    document = yaml.safe_load(REPORT_FILES[0].read_text())
    document["step"] = document.pop("steps")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, report_yaml_schema())
