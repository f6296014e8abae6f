"""A report is data: `report.yaml` plus readable SQL files, validated before anything runs.

`report.yaml` declares the typed parameters (with bounds), the scratch tables each run creates,
and the steps: their SQL (action and compensation), dependencies, time limit and retries. Loading
checks everything that can be checked without a database: every file exists and holds Trino SQL
that parses, every `:name` is a declared parameter, every `${table}` a declared scratch table, the
steps form a DAG, and each compensation only drops this run's scratch tables or deletes this run's
rows (`WHERE saga_id = :saga_id`).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Literal

import sqlglot
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlglot import exp

from report_pipeline.saga import SagaDefinition, StepDefinition
from report_pipeline.trino.sql import QualifiedName, SqlRenderError, parameter_names, render, table_placeholders

SPEC_FILE = "report.yaml"
RESERVED_PARAMETERS = {"saga_id"}   # bound by the pipeline itself: the saga's id, keying report rows
IDENTIFIER = r"^[a-z][a-z0-9_]{0,62}$"


class ReportSpecError(ValueError):
    """A report folder that cannot become a job; the message names the file and the problem."""


class ParameterError(ValueError):
    """Launch parameters that do not fit the report; `problems` maps each field to what is wrong."""

    def __init__(self, problems: dict[str, str]):
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in problems.items()))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParameterSpec(_Strict):
    type: Literal["date", "integer", "string"]
    description: str = ""
    default: Any = None
    min: int | None = None
    max: int | None = None
    choices: tuple[str, ...] | None = None


class DateRangeCheck(_Strict):
    start: str
    end: str
    max_days: int = Field(ge=1)


class RetrySpec(_Strict):
    max_retries: int = Field(default=3, ge=0, le=20)
    delay_seconds: float = Field(default=2.0, ge=0)
    backoff: float = Field(default=2.0, ge=1)


class PartitionSpec(_Strict):
    """Time partitions: each run covers one day or one week and fills date parameters from it."""

    cadence: Literal["daily", "weekly"]
    start: str                                             # first partition (ISO date; a Monday if weekly)
    fills: dict[str, Literal["first_day", "last_day"]]     # parameter -> which day of the window

    @field_validator("start")
    @classmethod
    def _iso(cls, value: str) -> str:
        dt.date.fromisoformat(value)
        return value

    def window(self, partition_key: str) -> tuple[dt.date, dt.date]:
        first = dt.date.fromisoformat(partition_key)
        return first, first + dt.timedelta(days=0 if self.cadence == "daily" else 6)

    def values(self, partition_key: str) -> dict[str, str]:
        first, last = self.window(partition_key)
        return {name: (first if day == "first_day" else last).isoformat() for name, day in self.fills.items()}


class ArrivalSpec(_Strict):
    """How to tell that a partition's data is complete: a cheap query returning the newest complete day."""

    sql: str
    interval_seconds: int = Field(default=300, ge=30)
    max_partitions_per_tick: int = Field(default=7, ge=1)


class StepSpec(_Strict):
    action: tuple[str, ...]
    compensation: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    creates: tuple[str, ...] = ()
    preview: str | None = None
    timeout_seconds: int = Field(default=3600, ge=1)
    retry: RetrySpec = RetrySpec()

    @field_validator("action", "compensation", "depends_on", "creates", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


class ReportSpec(_Strict):
    name: str = Field(pattern=IDENTIFIER)
    description: str
    owner: str
    schedule: str | None = None          # cron (UTC) for the partitioned job's schedule
    partitions: PartitionSpec | None = None
    arrival: ArrivalSpec | None = None
    sla_minutes: int = Field(default=120, ge=1)   # a saga RUNNING longer than this raises an alert
    tables: tuple[str, ...] = ()
    parameters: dict[str, ParameterSpec]
    date_ranges: tuple[DateRangeCheck, ...] = ()
    steps: dict[str, StepSpec]
    folder: Path
    sql: dict[str, str] = Field(default_factory=dict, repr=False)   # file name -> text

    @model_validator(mode="after")
    def _consistent(self) -> "ReportSpec":
        problems = []
        for table in self.tables:
            if not _is_identifier(table):
                problems.append(f"table name {table!r} must be a lower-case identifier")
        for name in [*self.parameters, *self.steps]:
            if not _is_identifier(name):
                problems.append(f"name {name!r} must be a lower-case identifier")
        for name, step in self.steps.items():
            unknown = set(step.creates) - set(self.tables)
            if unknown:
                problems.append(f"step {name} creates undeclared tables {sorted(unknown)}")
        if (self.schedule or self.arrival) and self.partitions is None:
            problems.append("a schedule or an arrival sensor needs partitions (which parameters a run fills)")
        if self.partitions is not None:
            for name in self.partitions.fills:
                if self.parameters.get(name, ParameterSpec(type="string")).type != "date":
                    problems.append(f"partitions fill {name!r}, which is not a date parameter")
            if self.partitions.cadence == "weekly" and dt.date.fromisoformat(self.partitions.start).weekday() != 0:
                problems.append("weekly partitions must start on a Monday")
        if self.schedule is not None:
            try:
                self.schedule_fields()
            except ValueError as error:
                problems.append(str(error))
        for check in self.date_ranges:
            for field in (check.start, check.end):
                if self.parameters.get(field, ParameterSpec(type="string")).type != "date":
                    problems.append(f"date range check names {field!r}, which is not a date parameter")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def schedule_fields(self) -> dict[str, int]:
        """The schedule's cron as the time of day (and weekday) a partition's run starts."""
        fields = (self.schedule or "").split()
        weekly = self.partitions is not None and self.partitions.cadence == "weekly"
        if len(fields) != 5 or not all(f.isdigit() for f in fields[:2]) or fields[2:4] != ["*", "*"] \
                or (fields[4] == "*") == weekly or (weekly and not fields[4].isdigit()):
            shape = "M H * * D (weekly)" if weekly else "M H * * * (daily)"
            raise ValueError(f"schedule {self.schedule!r} must have the form {shape} for {'weekly' if weekly else 'daily'} partitions")
        result = {"minute_of_hour": int(fields[0]), "hour_of_day": int(fields[1])}
        if weekly:
            result["day_of_week"] = int(fields[4])
        return result

    # --- the saga ---------------------------------------------------------------------------------
    def saga_definition(self) -> SagaDefinition:
        return SagaDefinition(self.name, tuple(
            StepDefinition(name, step.depends_on, bool(step.compensation), step.creates)
            for name, step in self.steps.items()))

    def scratch_tables(self, saga_id: str, catalog: str, scratch_schema: str) -> dict[str, QualifiedName]:
        """The run's scratch tables: `saga_<id>_<name>`, so the orphan sweeper can recognise them."""
        key = saga_key(saga_id)
        return {name: QualifiedName(catalog, scratch_schema, f"saga_{key}_{name}") for name in self.tables}

    # --- launch parameters ------------------------------------------------------------------------
    def parse_parameters(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Typed values from launch config, or ParameterError naming every bad field."""
        problems: dict[str, str] = {}
        values: dict[str, Any] = {}
        for name in sorted(set(raw) - set(self.parameters)):
            problems[name] = "unknown parameter"
        for name, parameter in self.parameters.items():
            value = raw.get(name, parameter.default)
            if value is None:
                problems[name] = "is required"
                continue
            try:
                values[name] = _coerce(parameter, value)
            except ValueError as error:
                problems[name] = str(error)
        for check in self.date_ranges:
            start, end = values.get(check.start), values.get(check.end)
            if start is None or end is None:
                continue
            if start > end:
                problems[check.end] = f"must not be before {check.start} ({start.isoformat()})"
            elif (end - start).days + 1 > check.max_days:
                problems[check.end] = (f"the range {start.isoformat()}..{end.isoformat()} spans "
                                       f"{(end - start).days + 1} days; at most {check.max_days} are allowed")
        if problems:
            raise ParameterError(problems)
        return values

    def sql_text(self, file: str) -> str:
        return self.sql[file]


def saga_key(saga_id: str) -> str:
    """The saga id as it appears in table names: lower-case letters and digits only."""
    key = "".join(ch for ch in saga_id.lower() if ch.isalnum())
    if not key:
        raise ValueError(f"saga id {saga_id!r} has no letters or digits")
    return key[:40]


def parameters_to_json(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in values.items()}


def _is_identifier(name: str) -> bool:
    return bool(re.fullmatch(IDENTIFIER, name))


def _coerce(parameter: ParameterSpec, value: Any) -> Any:
    if parameter.type == "date":
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO date (YYYY-MM-DD)") from None
    if parameter.type == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            try:
                value = int(str(value), 10)
            except ValueError:
                raise ValueError(f"{value!r} is not an integer") from None
        if parameter.min is not None and value < parameter.min:
            raise ValueError(f"{value} is below the minimum {parameter.min}")
        if parameter.max is not None and value > parameter.max:
            raise ValueError(f"{value} is above the maximum {parameter.max}")
        return value
    text = str(value)
    if parameter.choices is not None and text not in parameter.choices:
        raise ValueError(f"{text!r} is not one of {', '.join(parameter.choices)}")
    if parameter.max is not None and len(text) > parameter.max:
        raise ValueError(f"is longer than {parameter.max} characters")
    return text


# --- loading ----------------------------------------------------------------------------------------

def load_report(folder: Path) -> ReportSpec:
    path = folder / SPEC_FILE
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ReportSpecError(f"{path}: {error}") from None
    if not isinstance(document, dict):
        raise ReportSpecError(f"{path}: expected a mapping at the top level")
    try:
        spec = ReportSpec(name=folder.name, folder=folder, **document)
    except (ValidationError, TypeError) as error:
        raise ReportSpecError(f"{path}: {error}") from None
    sql = {}
    if spec.arrival is not None:
        try:
            sql[spec.arrival.sql] = (folder / spec.arrival.sql).read_text()
        except OSError as error:
            raise ReportSpecError(f"{path}: arrival: cannot read {spec.arrival.sql}: {error}") from None
    for step_name, step in spec.steps.items():
        for file in (*step.action, *step.compensation, *([step.preview] if step.preview else [])):
            try:
                sql[file] = (folder / file).read_text()
            except OSError as error:
                raise ReportSpecError(f"{path}: step {step_name}: cannot read {file}: {error}") from None
    spec = spec.model_copy(update={"sql": sql})
    _check_sql(spec, path)
    try:
        spec.saga_definition()
    except ValueError as error:
        raise ReportSpecError(f"{path}: {error}") from None
    return spec


def _check_sql(spec: ReportSpec, path: Path) -> None:
    declared = set(spec.parameters) | RESERVED_PARAMETERS
    dummy_tables = spec.scratch_tables("validation", "catalog", "scratch")
    for step_name, step in spec.steps.items():
        where = f"{path}: step {step_name}"
        for file in (*step.action, *step.compensation, *([step.preview] if step.preview else [])):
            text = spec.sql[file]
            unknown_params = set(parameter_names(text)) - declared
            if unknown_params:
                raise ReportSpecError(f"{where}: {file} uses undeclared parameters "
                                      f"{', '.join(':' + p for p in sorted(unknown_params))}")
            unknown_tables = table_placeholders(text) - set(spec.tables)
            if unknown_tables:
                raise ReportSpecError(f"{where}: {file} uses undeclared tables "
                                      f"{', '.join('${' + t + '}' for t in sorted(unknown_tables))}")
            try:
                statement = render(text, dummy_tables, {name: None for name in parameter_names(text)})
                trees = [t for t in sqlglot.parse(statement.sql, read="trino") if t is not None]
            except (SqlRenderError, sqlglot.errors.ParseError, sqlglot.errors.TokenError) as error:
                raise ReportSpecError(f"{where}: {file} is not valid Trino SQL: {error}") from None
            if len(trees) != 1:
                raise ReportSpecError(f"{where}: {file} must hold exactly one statement")
            if file in step.compensation:
                _check_compensation(trees[0], text, step, where, file)
        for table in step.creates:
            if not any(table in table_placeholders(spec.sql[f]) for f in step.action):
                raise ReportSpecError(f"{where}: creates ${{{table}}} but its action never names it")


def _check_compensation(tree: exp.Expression, text: str, step: StepSpec, where: str, file: str) -> None:
    """An undo may drop this step's scratch tables, or delete this saga's rows: nothing else."""
    tables = table_placeholders(text)
    if isinstance(tree, exp.Drop):
        if not tree.args.get("exists"):
            raise ReportSpecError(f"{where}: {file} must be DROP TABLE IF EXISTS (an undo must be idempotent)")
        if not tables or not tables <= set(step.creates):
            raise ReportSpecError(f"{where}: {file} may only drop tables this step creates ({', '.join(step.creates)})")
        return
    if isinstance(tree, exp.Delete):
        where_clause = tree.args.get("where")
        keyed = where_clause is not None and any(
            isinstance(eq, exp.EQ) and {c.name.lower() for c in eq.find_all(exp.Column)} == {"saga_id"}
            for eq in _conjuncts(where_clause.this))
        if not keyed or "saga_id" not in parameter_names(text):
            raise ReportSpecError(f"{where}: {file} must delete only this saga's rows (WHERE saga_id = :saga_id)")
        return
    raise ReportSpecError(f"{where}: {file}: a compensation is DROP TABLE IF EXISTS or DELETE ... WHERE saga_id = "
                          f":saga_id, not {tree.key.upper()}")


def _conjuncts(condition: exp.Expression) -> list[exp.Expression]:
    if isinstance(condition, exp.And):
        return _conjuncts(condition.left) + _conjuncts(condition.right)
    return [condition]
