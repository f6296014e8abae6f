"""Rendering a report's SQL file into a statement and its bound parameters.

Report SQL names values as `:name` (sent to Trino as bound `?` parameters, never spliced into the
text) and tables the run generates as `${name}` (identifiers can't be parameters, so each one is
validated and quoted before it is substituted). The text is otherwise sent exactly as written.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any, Mapping

import sqlglot
from sqlglot.tokens import TokenType

_IDENTIFIER_PART = re.compile(r"[a-z_][a-z0-9_]{0,127}")


class SqlRenderError(ValueError):
    """A SQL file and the values given for it do not fit together."""


@dataclass(frozen=True)
class QualifiedName:
    """catalog.schema.table, each part a validated lower-case identifier."""

    catalog: str
    schema: str
    table: str

    def __post_init__(self) -> None:
        for part in (self.catalog, self.schema, self.table):
            if not _IDENTIFIER_PART.fullmatch(part):
                raise SqlRenderError(f"invalid identifier part {part!r}: use lower-case letters, digits and _")

    @classmethod
    def parse(cls, dotted: str) -> "QualifiedName":
        parts = dotted.split(".")
        if len(parts) != 3:
            raise SqlRenderError(f"expected catalog.schema.table, got {dotted!r}")
        return cls(*parts)

    def quoted(self) -> str:
        return ".".join(f'"{p}"' for p in (self.catalog, self.schema, self.table))

    def __str__(self) -> str:
        return f"{self.catalog}.{self.schema}.{self.table}"


@dataclass(frozen=True)
class Statement:
    sql: str
    parameters: list[Any]


def is_read_only(sql: str) -> bool:
    """Whether a statement only reads (SELECT, WITH, SHOW, ...): safe to submit again."""
    try:
        tree = sqlglot.parse_one(sql, read="trino")
    except sqlglot.errors.SqlglotError:
        return False
    return isinstance(tree, sqlglot.exp.Query) or isinstance(tree, sqlglot.exp.Describe)


def parameter_names(sql: str) -> list[str]:
    """The `:name` parameters of a SQL text, in order of appearance (repeats included)."""
    return [name for name, _, _ in _named_parameters(sql)]


def table_placeholders(sql: str) -> set[str]:
    return {m.group("named") or m.group("braced") for m in string.Template.pattern.finditer(sql)
            if m.group("named") or m.group("braced")}


def render(sql: str, tables: Mapping[str, QualifiedName], values: Mapping[str, Any]) -> Statement:
    """Substitute quoted table names and turn `:name` into bound `?` parameters."""
    missing_tables = table_placeholders(sql) - set(tables)
    if missing_tables:
        raise SqlRenderError(f"no table given for ${{{', '.join(sorted(missing_tables))}}}")
    try:
        text = string.Template(sql).substitute({k: v.quoted() for k, v in tables.items()})
    except ValueError as error:
        raise SqlRenderError(f"invalid ${{...}} placeholder: {error}") from None
    found = _named_parameters(text)
    missing = sorted({name for name, _, _ in found} - set(values))
    if missing:
        raise SqlRenderError(f"no value given for parameter(s) {', '.join(':' + m for m in missing)}")
    pieces, parameters, position = [], [], 0
    for name, start, end in found:
        pieces.append(text[position:start])
        pieces.append("?")
        parameters.append(values[name])
        position = end
    pieces.append(text[position:])
    return Statement("".join(pieces).strip().rstrip(";").rstrip(), parameters)


def _named_parameters(sql: str) -> list[tuple[str, int, int]]:
    """(name, start, end) of each `:name`, found by Trino's tokenizer so strings and comments are skipped."""
    try:
        tokens = sqlglot.tokenize(sql, read="trino")
    except sqlglot.errors.TokenError as error:
        raise SqlRenderError(f"cannot tokenize SQL: {error}") from None
    found = []
    for colon, name in zip(tokens, tokens[1:]):
        if colon.token_type == TokenType.COLON and name.start == colon.end + 1 \
                and re.fullmatch(r"[A-Za-z_]\w*", name.text):
            found.append((name.text.lower(), colon.start, name.end + 1))
    return found
