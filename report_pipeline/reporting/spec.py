"""A report is data: `report.yaml` plus readable SQL files, validated before anything runs.

`report.yaml` declares the typed parameters (with bounds), the scratch tables each run creates,
and the steps: their SQL (action and compensation), dependencies, time limit and retries. Loading
checks everything that can be checked without a database: every file lies inside the report folder
and holds Trino SQL that parses, every `:name` is a declared parameter, every `${table}` a declared
scratch table, the steps form a DAG, and each compensation, parsed, only drops this run's scratch
tables or deletes this run's rows (`WHERE saga_id = :saga_id`; see compensation_sql.py). Errors are
one line naming the file and the problem, never quoting a file.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import stat
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from sqlglot import exp
from yaml.composer import ComposerError

from report_pipeline.reporting.compensation_sql import (
    compensation_problem,
    created_tables,
    insert_targets,
    key_of,
)
from report_pipeline.saga import RetryPolicy, SagaDefinition, StepDefinition
from report_pipeline.saga.scratch_names import scratch_table_name
from report_pipeline.trino.sql import (
    QualifiedName,
    SqlRenderError,
    parameter_names,
    parse_statement,
    render,
    substitute_tables,
    table_placeholders,
)

SPEC_FILE = "report.yaml"
RESERVED_PARAMETERS = {"saga_id"}  # bound by the pipeline itself: the saga's id, keying report rows
IDENTIFIER = r"^[a-z][a-z0-9_]{0,62}$"
ISO_DATE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
)  # Python's fromisoformat also takes 20260101, 2026-W01-1

# A real report.yaml is a few KiB and a SQL file rarely passes 100 KiB: anything near these limits
# is a mistake or an attack, refused before it costs memory and minutes (YAML and sqlglot are slow).
MAX_SPEC_BYTES = 256 * 1024  # report.yaml
MAX_SQL_BYTES = 1024 * 1024  # each SQL file (room for long generated IN lists)
MAX_YAML_NODES = 10_000  # values with every alias expanded: a "billion laughs" is tiny on disk
MAX_YAML_DEPTH = 32  # nesting (a real spec nests 4 deep); deeper would exhaust the stack


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
    """How a step is retried after a transient error, as report.yaml says it."""

    max_retries: int = Field(default=3, ge=0, le=20)
    delay_seconds: float = Field(default=2.0, ge=0)
    backoff: float = Field(default=2.0, ge=1)

    def policy(self) -> RetryPolicy:
        """The same retries as a policy (which computes the delays): the first try, then these."""
        return RetryPolicy(
            max_attempts=self.max_retries + 1,
            initial_delay_seconds=self.delay_seconds,
            backoff=self.backoff,
        )


class PartitionSpec(_Strict):
    """Time partitions: each run covers one day or one week and fills date parameters from it."""

    cadence: Literal["daily", "weekly"]
    start: str  # first partition (ISO date; a Monday if weekly)
    fills: dict[str, Literal["first_day", "last_day"]]  # parameter -> which day of the window

    @field_validator("start")
    @classmethod
    def _iso(cls, value: str) -> str:
        parse_date(value)
        return value

    def window(self, partition_key: str) -> tuple[dt.date, dt.date]:
        first = dt.date.fromisoformat(partition_key)
        return first, first + dt.timedelta(days=0 if self.cadence == "daily" else 6)

    def values(self, partition_key: str) -> dict[str, str]:
        first, last = self.window(partition_key)
        return {
            name: (first if day == "first_day" else last).isoformat()
            for name, day in self.fills.items()
        }


class ArrivalSpec(_Strict):
    """How to tell that a partition's data is complete: a cheap query for the newest full day."""

    sql: str
    interval_seconds: int = Field(default=300, ge=30)
    max_partitions_per_tick: int = Field(default=7, ge=1)


def _one_or_many(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


# A name or a list of names in report.yaml (the published schema says both are fine).
Names = Annotated[
    tuple[str, ...],
    BeforeValidator(_one_or_many),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
]


class StepSpec(_Strict):
    action: Names
    compensation: Names = ()
    depends_on: Names = ()
    creates: Names = ()
    preview: str | None = None
    timeout_seconds: int = Field(default=3600, ge=1)
    retry: RetrySpec = RetrySpec()


class Execution(StrEnum):
    """How a run's steps are executed. AUTO: a chain (no two steps ever side by side) runs in one
    process, step after step, sparing a process start per step; parallel branches get a process
    each, so they really run at once."""

    AUTO = "auto"
    IN_PROCESS = "in_process"
    MULTIPROCESS = "multiprocess"


class ReportSpec(_Strict):
    name: str = Field(pattern=IDENTIFIER)
    description: str
    owner: str
    execution: Execution = Execution.AUTO
    schedule: str | None = None  # cron (UTC) for the partitioned job's schedule
    partitions: PartitionSpec | None = None
    arrival: ArrivalSpec | None = None
    sla_minutes: int = Field(default=120, ge=1)  # a saga RUNNING longer than this raises an alert
    tables: tuple[str, ...] = ()
    parameters: dict[str, ParameterSpec]
    date_ranges: tuple[DateRangeCheck, ...] = ()
    steps: dict[str, StepSpec]
    folder: Path
    sql: dict[str, str] = Field(default_factory=dict, repr=False)  # file name -> text

    @model_validator(mode="after")
    def _consistent(self) -> ReportSpec:
        problems = []
        for table in self.tables:
            if not _is_identifier(table):
                problems.append(f"table name {table!r} must be a lower-case identifier")
        for name in [*self.parameters, *self.steps]:
            if not _is_identifier(name):
                problems.append(f"name {_shown(name)} must be a lower-case identifier")
        for name, parameter in self.parameters.items():
            if parameter.default is not None:
                try:
                    _coerce(parameter, parameter.default)
                except ValueError as error:
                    problems.append(f"parameter {name}: default {error}")
        for name, step in self.steps.items():
            unknown = set(step.creates) - set(self.tables)
            if unknown:
                problems.append(f"step {name} creates undeclared tables {sorted(unknown)}")
        if (self.schedule or self.arrival) and self.partitions is None:
            problems.append(
                "a schedule or an arrival sensor needs partitions (which parameters a run fills)"
            )
        if self.partitions is not None:
            for name in self.partitions.fills:
                if self.parameters.get(name, ParameterSpec(type="string")).type != "date":
                    problems.append(f"partitions fill {name!r}, which is not a date parameter")
            if (
                self.partitions.cadence == "weekly"
                and parse_date(self.partitions.start).weekday() != 0
            ):
                problems.append("weekly partitions must start on a Monday")
        if self.schedule is not None:
            try:
                self.schedule_fields()
            except ValueError as error:
                problems.append(str(error))
        for check in self.date_ranges:
            for field in (check.start, check.end):
                if self.parameters.get(field, ParameterSpec(type="string")).type != "date":
                    problems.append(
                        f"date range check names {field!r}, which is not a date parameter"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def schedule_fields(self) -> dict[str, int]:
        """The schedule's cron as the time of day (and weekday) a partition's run starts."""
        fields = (self.schedule or "").split()
        weekly = self.partitions is not None and self.partitions.cadence == "weekly"
        if (
            len(fields) != 5
            or not all(f.isdigit() for f in fields[:2])
            or fields[2:4] != ["*", "*"]
            or (fields[4] == "*") == weekly
            or (weekly and not fields[4].isdigit())
        ):
            shape = "M H * * D (weekly)" if weekly else "M H * * * (daily)"
            cadence = "weekly" if weekly else "daily"
            raise ValueError(
                f"schedule {self.schedule!r} must have the form {shape} for {cadence} partitions"
            )
        result = {"minute_of_hour": int(fields[0]), "hour_of_day": int(fields[1])}
        if weekly:
            result["day_of_week"] = int(fields[4])
        return result

    # --- the saga ---------------------------------------------------------------------------------
    def saga_definition(self) -> SagaDefinition:
        return SagaDefinition(
            self.name,
            tuple(
                StepDefinition(
                    name,
                    step.depends_on,
                    compensable=bool(step.compensation),
                    created_tables=step.creates,
                )
                for name, step in self.steps.items()
            ),
        )

    def runs_in_process(self) -> bool:
        """Whether the run's steps execute one after another in the run's own process."""
        if self.execution == Execution.AUTO:
            return self.saga_definition().is_chain()
        return self.execution == Execution.IN_PROCESS

    def scratch_tables(
        self, saga_id: str, catalog: str, scratch_schema: str
    ) -> dict[str, QualifiedName]:
        """The run's scratch tables: `saga_<id>_<name>`, so the orphan sweeper knows them."""
        return {
            name: QualifiedName(catalog, scratch_schema, scratch_table_name(saga_id, name))
            for name in self.tables
        }

    # --- launch parameters ------------------------------------------------------------------------
    def parse_parameters(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Typed values from launch config, or ParameterError naming every bad field."""
        problems: dict[str, str] = {}
        values: dict[str, Any] = {}
        for name in sorted(str(key) for key in set(raw) - set(self.parameters)):
            problems[_shown(name) if not _is_identifier(name) else name] = "unknown parameter"
        for name, parameter in self.parameters.items():
            value = raw.get(name, parameter.default)
            if value is None:  # missing without a default, or an explicit null
                problems[name] = "a value is required"
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
                problems[check.end] = (
                    f"the range {start.isoformat()}..{end.isoformat()} spans "
                    f"{(end - start).days + 1} days; at most {check.max_days} are allowed"
                )
        if problems:
            raise ParameterError(problems)
        return values

    def sql_text(self, file: str) -> str:
        return self.sql[file]


def parameters_to_json(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in values.items()}


def parse_date(value: Any) -> dt.date:
    """A date, or text written exactly YYYY-MM-DD; datetimes and other spellings are refused."""
    if type(value) is dt.date:  # not a datetime, a subclass of date
        return value
    if isinstance(value, str) and ISO_DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError as error:  # 2026-02-30
            raise ValueError(f"{_shown(value)} is not an ISO date (YYYY-MM-DD): {error}") from None
    raise ValueError(f"{_shown(value)} is not an ISO date (YYYY-MM-DD)")


def _is_identifier(name: str) -> bool:
    return bool(re.fullmatch(IDENTIFIER, name))


def _shown(value: Any, limit: int = 40) -> str:
    """A value as an error may quote it: one line, and short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _coerce(parameter: ParameterSpec, value: Any) -> Any:
    if parameter.type == "date":
        return parse_date(value)
    if parameter.type == "integer":
        if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]{1,18}", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{_shown(value)} is not an integer")
        if parameter.min is not None and value < parameter.min:
            raise ValueError(f"{value} is below the minimum {parameter.min}")
        if parameter.max is not None and value > parameter.max:
            raise ValueError(f"{value} is above the maximum {parameter.max}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"{_shown(value)} is not text")
    if parameter.choices is not None and value not in parameter.choices:
        raise ValueError(f"{_shown(value)} is not one of {', '.join(parameter.choices)}")
    if parameter.max is not None and len(value) > parameter.max:
        raise ValueError(f"is longer than {parameter.max} characters")
    return value


# --- loading -------------------------------------------------------------------------------------


# Fields the loader fills from the report folder; `report.yaml` may not set them.
DERIVED_FIELDS = frozenset({"name", "folder", "sql"})
SCHEMA_FILE = "report.schema.json"  # beside the report folders; each report.yaml points at it


def report_yaml_schema() -> dict[str, Any]:
    """The JSON Schema of a `report.yaml`, from the model the loader validates with, so editors
    can complete and check a spec as it is written (the loader stays the authority: it also checks
    the SQL files and the rules that span fields)."""
    schema = ReportSpec.model_json_schema(mode="validation")
    for field in DERIVED_FIELDS:
        schema["properties"].pop(field, None)
    schema["required"] = [f for f in schema.get("required", []) if f not in DERIVED_FIELDS]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "report_pipeline report.yaml",
    }


def load_report(folder: Path) -> ReportSpec:
    path = folder / SPEC_FILE
    try:
        document = _load_yaml(_read_report_file(folder, SPEC_FILE, MAX_SPEC_BYTES))
    except yaml.YAMLError as error:
        raise ReportSpecError(f"{path}: {_yaml_problem(error)}") from None
    except _FileRefused as error:
        raise ReportSpecError(f"{path}: {error}") from None
    if not isinstance(document, dict):
        raise ReportSpecError(f"{path}: expected a mapping at the top level")
    derived = sorted(DERIVED_FIELDS & set(document))
    if derived:
        raise ReportSpecError(
            f"{path}: {', '.join(derived)} cannot be set here (they come from the report folder)"
        )
    try:
        spec = ReportSpec(name=folder.name, folder=folder, **document)
    except ValidationError as error:
        raise ReportSpecError(f"{path}: {_validation_problems(error)}") from None
    except TypeError as error:  # a key that is not a string
        raise ReportSpecError(f"{path}: {error}") from None
    sql = {}
    if spec.arrival is not None:
        try:
            sql[spec.arrival.sql] = _read_report_file(folder, spec.arrival.sql, MAX_SQL_BYTES)
        except _FileRefused as error:
            raise ReportSpecError(f"{path}: arrival: {error}") from None
    for step_name, step in spec.steps.items():
        for file in (*step.action, *step.compensation, *([step.preview] if step.preview else [])):
            try:
                sql[file] = _read_report_file(folder, file, MAX_SQL_BYTES)
            except _FileRefused as error:
                raise ReportSpecError(f"{path}: step {step_name}: {error}") from None
    spec = spec.model_copy(update={"sql": sql})
    _check_sql(spec, path)
    try:
        spec.saga_definition()
    except ValueError as error:
        raise ReportSpecError(f"{path}: {error}") from None
    return spec


class _FileRefused(Exception):
    """A report's file that may not or cannot be read; the message names it, never its contents."""


def _read_report_file(folder: Path, name: str, limit: int) -> str:
    """The text of a file of the report folder, by the relative name the spec gives it. Only a
    regular file inside the folder (after symlinks), at most `limit` bytes of UTF-8."""
    shown = name if name.isprintable() and len(name) <= 80 else _shown(name, 80)
    relative = PurePosixPath(name)
    if not name or relative.is_absolute() or ".." in relative.parts:
        raise _FileRefused(
            f"{shown} must be a relative path inside the report folder, without '..'"
        )
    try:
        root = folder.resolve(strict=True)
        path = (root / relative).resolve(strict=True)
        if not path.is_relative_to(root):
            raise _FileRefused(f"{shown} leads outside the report folder (through a symlink)")
        if not stat.S_ISREG(path.stat().st_mode):
            raise _FileRefused(f"{shown} is not a regular file")
        with path.open("rb") as handle:
            data = handle.read(limit + 1)  # not the size stat gave: the file may grow meanwhile
    except OSError as error:
        raise _FileRefused(
            f"cannot read {shown}: {error.strerror or type(error).__name__}"
        ) from None
    except (RuntimeError, ValueError):  # a symlink loop; a NUL in the name
        raise _FileRefused(f"cannot read {shown}: not a usable path") from None
    if len(data) > limit:
        raise _FileRefused(f"{shown} is larger than the {limit // 1024} KiB allowed")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _FileRefused(f"{shown} is not UTF-8 text") from None


class _SpecLoader(yaml.SafeLoader):
    """yaml's SafeLoader, refusing nesting deeper than MAX_YAML_DEPTH."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise ComposerError(
                    None,
                    None,
                    f"nested deeper than {MAX_YAML_DEPTH} levels",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _load_yaml(text: str) -> Any:
    """The document, refused if its aliases expand past MAX_YAML_NODES values: yaml shares an
    anchored value between its aliases, but whatever walks the result (pydantic) expands them."""
    loader = _SpecLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        count, pending = 0, [root]
        while (
            pending
        ):  # stops at the limit, so a bomb (or an alias inside its own anchor) costs little
            node = pending.pop()
            count += 1
            if count > MAX_YAML_NODES:
                raise yaml.YAMLError(
                    f"more than {MAX_YAML_NODES} values once its aliases are expanded"
                )
            if isinstance(node, yaml.SequenceNode):
                pending.extend(node.value)
            elif isinstance(node, yaml.MappingNode):
                pending.extend(item for pair in node.value for item in pair)
        return loader.construct_document(root)
    finally:
        loader.dispose()


def _yaml_problem(error: yaml.YAMLError) -> str:
    """yaml's error in one line: the problem and where (its own message quotes the text)."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"not valid YAML: {error.problem or error.context}{where}"
    return f"not accepted: {error}"


def _validation_problems(error: ValidationError) -> str:
    """pydantic's errors in one line, `field.path: problem`, without the offending input."""
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in item["loc"])
        cause = item.get("ctx", {}).get("error")
        message = str(cause) if item["type"] == "value_error" and cause is not None else item["msg"]
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def _check_sql(spec: ReportSpec, path: Path) -> None:
    declared = set(spec.parameters) | RESERVED_PARAMETERS
    # an unguessable saga id: no table name written literally in a file can pass for a scratch one
    dummy_tables = spec.scratch_tables(f"validation{secrets.token_hex(8)}", "catalog", "scratch")
    for step_name, step in spec.steps.items():
        where = f"{path}: step {step_name}"
        trees = {}
        for file in (*step.action, *step.compensation, *([step.preview] if step.preview else [])):
            text = spec.sql[file]
            role = (
                "compensation"
                if file in step.compensation
                else "preview"
                if file == step.preview
                else "action"
            )
            unknown_params = set(parameter_names(text)) - declared
            if unknown_params:
                raise ReportSpecError(
                    f"{where}: {role} {file} uses undeclared parameters "
                    f"{', '.join(':' + p for p in sorted(unknown_params))}"
                )
            unknown_tables = table_placeholders(text) - set(spec.tables)
            if unknown_tables:
                raise ReportSpecError(
                    f"{where}: {role} {file} uses undeclared tables "
                    f"{', '.join('${' + t + '}' for t in sorted(unknown_tables))}"
                )
            try:  # as Trino will receive it
                trees[file] = parse_statement(
                    render(text, dummy_tables, dict.fromkeys(parameter_names(text))).sql
                )
            except SqlRenderError as error:
                raise ReportSpecError(f"{where}: {role} {file} {error}") from None
        actions = [trees[file] for file in step.action]
        for table in step.creates:
            if key_of(dummy_tables[table]) not in created_tables(actions):
                raise ReportSpecError(
                    f"{where}: creates ${{{table}}} but its action never creates it "
                    f"(CREATE TABLE ${{{table}}})"
                )
        for file in step.compensation:
            try:  # parsed again with its parameters still named, to tell `:saga_id` from any other
                tree = parse_statement(substitute_tables(spec.sql[file], dummy_tables))
            except SqlRenderError as error:
                raise ReportSpecError(f"{where}: compensation {file} {error}") from None
            problem = compensation_problem(
                tree,
                droppable={key_of(dummy_tables[table]) for table in step.creates},
                targets=insert_targets(actions),
                binds_saga_id=lambda node: (
                    isinstance(node, exp.Placeholder) and node.name.lower() == "saga_id"
                ),
            )
            if problem:
                raise ReportSpecError(f"{where}: compensation {file}: {problem}")
