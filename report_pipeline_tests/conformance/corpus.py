"""The conformance corpus: statements kept as data in `corpus/*.yaml`, one file per topic.

A file is a mapping with an optional `session:` (the default for its entries) and `entries:`, a list
run in order on one connection (so USE, SET SESSION, PREPARE and DDL sequences carry over). An
entry is `sql:` (or `file:` naming a SQL file of the repository, optionally its n-th `statement:`)
plus optional keys, all validated here so a typo fails with the file and entry index:

- `parameters:` values bound to `?` (a list), or to a report file's `:name`s (a mapping);
- `session:` catalog, schema, time_zone, properties, isolation_level: the entry runs on a fresh
  connection of its own with the file's session updated by these;
- `ordered:` compare rows in order (default: when the statement has a top-level ORDER BY);
- `compare_rows: false` when the answer's text differs by nature (EXPLAIN's plan);
- `error:` the error name Trino answers: marks a deliberate error case;
- `local_not_supported:` the construct, as the README names it, that the local engine refuses
  with NOT_SUPPORTED while Trino answers (or fails otherwise);
- `known_divergence:` how the local engine's answer still differs from Trino's, listed in the
  README, and a failure once it no longer differs (the mark goes then). Today only for statements
  that follow a refused one in a sequence (the table it would have made does not exist): loud, not
  silent.

`${run}` in an entry's SQL, parameters, `tables:` and `replace:` is the run's unique name
(`conformance_<hex>`): the harness creates the schema `lake.${run}` on both servers and drops
everything named after it afterwards.
Parameter values may be tagged `!decimal '1.50'`, `!uuid '...'` or `!row [1, 'a']`, so YAML can
express every value the client binds.
"""

from __future__ import annotations

import decimal
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlglot
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlglot import exp
from sqlglot.tokens import TokenType

from report_pipeline.trino.sql import QualifiedName, render

CORPUS_DIR = Path(__file__).parent / "corpus"
REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_PLACEHOLDER = "${run}"
README_BEGIN, README_END = "<!-- conformance:begin -->", "<!-- conformance:end -->"


class CorpusError(ValueError):
    """A corpus file that does not fit the schema; the message names the file and the entry."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SessionSpec(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    catalog: str | None = "lake"
    schema_: str | None = Field(default=None, alias="schema")  # `schema` would shadow BaseModel's
    time_zone: str | None = "UTC"  # pinned: the servers' own default zones may differ
    properties: dict[str, str] = {}
    isolation_level: Literal[
        "AUTOCOMMIT", "READ_UNCOMMITTED", "READ_COMMITTED", "REPEATABLE_READ", "SERIALIZABLE"
    ] = "AUTOCOMMIT"


DEFAULT_SESSION = SessionSpec(schema="analytics")


class EntrySpec(_Strict):
    sql: str | None = None
    file: str | None = None  # a SQL file, relative to the repository root
    statement: int | None = None  # its n-th statement (0-based), for files holding several
    replace: dict[str, str] = {}  # literal text substitutions (a bootstrap target into ${run})
    tables: dict[str, str] = {}  # a report file's ${name} placeholders -> catalog.schema.table
    parameters: list[Any] | dict[str, Any] | None = None
    session: dict[str, Any] | None = None
    ordered: bool | None = None
    compare_rows: bool = True
    error: str | None = None
    local_not_supported: str | None = None
    known_divergence: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> EntrySpec:
        if (self.sql is None) == (self.file is None):
            raise ValueError("give exactly one of sql: and file:")
        if self.file is None and (self.statement is not None or self.tables):
            raise ValueError("statement: and tables: belong to a file: entry")
        if isinstance(self.parameters, dict) and self.file is None:
            raise ValueError(
                "named parameters (a mapping) bind a file's :name placeholders; use a list for ?"
            )
        if self.file is not None and not (REPO_ROOT / self.file).is_file():
            raise ValueError(f"file {self.file} does not exist")
        if self.local_not_supported is not None and self.known_divergence is not None:
            raise ValueError(
                "an entry is either refused (local_not_supported) or a known divergence, not both"
            )
        return self


@dataclass(frozen=True)
class Statement:
    sql: str
    parameters: list[Any] | None


@dataclass(frozen=True)
class Entry:
    file: str  # corpus file stem
    index: int  # position in the file, 0-based
    spec: EntrySpec
    session: SessionSpec  # the file's session updated by the entry's
    own_connection: bool  # the entry set a session: it runs on a connection of its own

    @property
    def where(self) -> str:
        return f"{self.file}.yaml:{self.index}"

    def statement(self, run: str) -> Statement:
        """The SQL text and parameters sent for this entry in the run named `run`."""
        spec = self.spec
        if spec.sql is not None:
            parameters = _substitute(spec.parameters, run) if spec.parameters is not None else None
            return Statement(spec.sql.replace(RUN_PLACEHOLDER, run), parameters)
        assert spec.file is not None  # the schema wants exactly one of sql: and file:
        text = (REPO_ROOT / spec.file).read_text()
        if spec.statement is not None:
            text = split_statements(text)[spec.statement]
        for old, new in spec.replace.items():
            text = text.replace(old, new.replace(RUN_PLACEHOLDER, run))
        tables = {
            name: QualifiedName.parse(value.replace(RUN_PLACEHOLDER, run))
            for name, value in spec.tables.items()
        }
        values = _substitute(spec.parameters, run) if isinstance(spec.parameters, dict) else {}
        rendered = render(text, tables, values)  # how the report runner renders it
        if isinstance(spec.parameters, list):
            return Statement(rendered.sql, _substitute(spec.parameters, run))
        return Statement(rendered.sql, rendered.parameters or None)

    def ordered(self, sql: str) -> bool:
        return self.spec.ordered if self.spec.ordered is not None else has_top_level_order_by(sql)


def has_top_level_order_by(sql: str) -> bool:
    """Whether the statement is a query whose outermost level sorts (on sqlglot's tree)."""
    quiet = logging.getLogger("sqlglot")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # SHOW, SET, ... fall back to an opaque Command, with a warning
    try:
        tree = sqlglot.parse_one(sql, read="trino")
    except sqlglot.errors.SqlglotError:
        return False
    finally:
        quiet.setLevel(level)
    return isinstance(tree, exp.Query) and tree.args.get("order") is not None


def split_statements(text: str) -> list[str]:
    """The `;`-separated statements of a SQL file, found by Trino's tokenizer (comments skipped)."""
    tokens = sqlglot.tokenize(text, read="trino")
    statements, start = [], 0
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            statements.append(text[start : token.start].strip())
            start = token.end + 1
    statements.append(text[start:].strip())
    return [s for s in statements if sqlglot.tokenize(s, read="trino")]


def _substitute(value: Any, run: str) -> Any:
    if isinstance(value, str):
        return value.replace(RUN_PLACEHOLDER, run)
    if isinstance(value, list):
        return [_substitute(v, run) for v in value]
    if isinstance(value, tuple):
        return tuple(_substitute(v, run) for v in value)
    if isinstance(value, dict):
        return {k: _substitute(v, run) for k, v in value.items()}
    return value


# --- loading --------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML plus tags for the parameter values YAML has no syntax for."""


def _decimal(loader: _Loader, node: yaml.ScalarNode) -> decimal.Decimal:
    return decimal.Decimal(loader.construct_scalar(node))


def _uuid(loader: _Loader, node: yaml.ScalarNode) -> uuid.UUID:
    return uuid.UUID(loader.construct_scalar(node))


def _row(loader: _Loader, node: yaml.SequenceNode) -> tuple:
    return tuple(loader.construct_sequence(node, deep=True))


_Loader.add_constructor("!decimal", _decimal)
_Loader.add_constructor("!uuid", _uuid)
_Loader.add_constructor("!row", _row)


def corpus_files() -> list[Path]:
    return sorted(CORPUS_DIR.glob("*.yaml"))


def load_file(path: Path) -> list[Entry]:
    try:
        document = yaml.load(path.read_text(), Loader=_Loader)
    except yaml.YAMLError as error:
        raise CorpusError(f"{path.name}: not valid YAML: {error}") from None
    if (
        not isinstance(document, dict)
        or set(document) - {"session", "entries"}
        or not isinstance(document.get("entries"), list)
    ):
        raise CorpusError(
            f"{path.name}: expected a mapping with `entries:` (a list) and an optional `session:`"
        )
    try:
        file_session = DEFAULT_SESSION.model_copy(
            update=_session_update(document.get("session") or {})
        )
    except (ValidationError, ValueError) as error:
        raise CorpusError(f"{path.name}: session: {_short(error)}") from None
    entries = []
    for index, raw in enumerate(document["entries"]):
        try:
            if not isinstance(raw, dict):
                raise ValueError("an entry is a mapping with `sql:` or `file:`")
            spec = EntrySpec(**raw)
            session = file_session.model_copy(update=_session_update(spec.session or {}))
        except (ValidationError, ValueError, TypeError) as error:
            raise CorpusError(f"{path.name} entry {index}: {_short(error)}") from None
        entries.append(Entry(path.stem, index, spec, session, spec.session is not None))
    return entries


def _session_update(raw: dict[str, Any]) -> dict[str, Any]:
    """Validated session fields, keyed as the model stores them (only those given)."""
    checked = SessionSpec(**raw)
    return {name: getattr(checked, name) for name in checked.model_fields_set}


def _short(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}" for e in error.errors()
        )
    return str(error)


def load_corpus() -> dict[str, list[Entry]]:
    """Every corpus file's entries, by file stem."""
    return {path.stem: load_file(path) for path in corpus_files()}


# --- the README's differences table ---------------------------------------------------------------


def differences_table(corpus: dict[str, list[Entry]]) -> str:
    """The markdown table of what the local engine refuses (NOT_SUPPORTED) while Trino answers."""
    constructs: dict[str, set[str]] = {}
    for entries in corpus.values():
        for entry in entries:
            if entry.spec.local_not_supported:
                constructs.setdefault(entry.spec.local_not_supported, set()).add(f"`{entry.file}`")
    lines = ["| Trino answers (local engine: NOT_SUPPORTED) | corpus |", "| --- | --- |"]
    lines += [
        f"| {_cell(construct)} | {', '.join(sorted(files))} |"
        for construct, files in sorted(constructs.items())
    ]
    known = [
        (name, index, entry.spec.known_divergence)
        for name, entries in corpus.items()
        for index, entry in enumerate(entries)
        if entry.spec.known_divergence
    ]
    if known:
        lines += [
            "",
            "Answered differently because an earlier statement of the sequence was refused (the "
            "table or setting it would have made does not exist):",
            "",
            "| corpus entry | how the local engine differs |",
            "| --- | --- |",
        ]
        lines += [f"| `{name}:{index}` | {_cell(reason)} |" for name, index, reason in known]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def readme_table(readme: Path = REPO_ROOT / "README.md") -> str | None:
    """The table between the conformance markers of README.md, or None when the markers are
    missing."""
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        return None
    return text.split(README_BEGIN, 1)[1].split(README_END, 1)[0].strip()
