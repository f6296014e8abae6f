"""Rendering a report's SQL file into a statement and its bound parameters.

Report SQL names values as `:name` (sent to Trino as bound `?` parameters, never spliced into the
text) and tables the run generates as `${name}` (identifiers can't be parameters, so each one is
validated and quoted before it is substituted). The text is otherwise sent exactly as written.
"""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.tokens import TokenType

_IDENTIFIER_PART = re.compile(r"[a-z_][a-z0-9_]{0,127}")
_UNTOKENIZABLE = "is not valid Trino SQL (an unterminated string, quoted identifier or comment)"


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
                raise SqlRenderError(
                    f"invalid identifier part {part!r}: use lower-case letters, digits and _"
                )

    @classmethod
    def parse(cls, dotted: str) -> QualifiedName:
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
    return isinstance(tree, (sqlglot.exp.Query, sqlglot.exp.Describe))


def parameter_names(sql: str) -> list[str]:
    """The `:name` parameters of a SQL text, in order of appearance (repeats included)."""
    return [name for name, _, _ in _named_parameters(sql)]


def table_placeholders(sql: str) -> set[str]:
    return {
        m.group("named") or m.group("braced")
        for m in string.Template.pattern.finditer(sql)
        if m.group("named") or m.group("braced")
    }


def substitute_tables(sql: str, tables: Mapping[str, QualifiedName]) -> str:
    """`${name}` replaced by the quoted table name; `:name` parameters left as they are."""
    missing_tables = table_placeholders(sql) - set(tables)
    if missing_tables:
        raise SqlRenderError(f"no table given for ${{{', '.join(sorted(missing_tables))}}}")
    try:
        return string.Template(sql).substitute({k: v.quoted() for k, v in tables.items()})
    except ValueError as error:
        raise SqlRenderError(f"invalid ${{...}} placeholder: {error}") from None


def render(sql: str, tables: Mapping[str, QualifiedName], values: Mapping[str, Any]) -> Statement:
    """Substitute quoted table names and turn `:name` into bound `?` parameters."""
    text = substitute_tables(sql, tables)
    found = _named_parameters(text)
    missing = sorted({name for name, _, _ in found} - set(values))
    if missing:
        raise SqlRenderError(
            f"no value given for parameter(s) {', '.join(':' + m for m in missing)}"
        )
    pieces, parameters, position = [], [], 0
    for name, start, end in found:
        pieces.append(text[position:start])
        pieces.append("?")
        parameters.append(values[name])
        position = end
    pieces.append(text[position:])
    return Statement("".join(pieces).strip().rstrip(";").rstrip(), parameters)


def parse_statement(sql: str) -> exp.Expr:
    """The one Trino statement of `sql` as a tree (comments play no part). An error says where,
    never quoting the text: it may come from a file that is not SQL at all."""
    try:
        trees = [tree for tree in sqlglot.parse(sql, read="trino") if tree is not None]
    except sqlglot.errors.ParseError as error:
        first = error.errors[0] if error.errors else {}
        # sqlglot's description may quote a token of the text ("... but got <Token ... text: ...>")
        description = str(first.get("description", "")).partition(" but got")[0].partition("<")[0]
        description = description.rstrip(" :").removesuffix(" missing for")
        raise SqlRenderError(
            f"is not valid Trino SQL (line {first.get('line', '?')}, column "
            f"{first.get('col', '?')}: {description or 'syntax error'})"
        ) from None
    except sqlglot.errors.TokenError:
        raise SqlRenderError(_UNTOKENIZABLE) from None
    if len(trees) != 1:
        raise SqlRenderError(f"must hold exactly one statement, not {len(trees)}")
    return trees[0]


def _named_parameters(sql: str) -> list[tuple[str, int, int]]:
    """(name, start, end) of each `:name`, found by Trino's tokenizer (so strings and comments
    are skipped)."""
    try:
        tokens = sqlglot.tokenize(sql, read="trino")
    except sqlglot.errors.TokenError:
        raise SqlRenderError(_UNTOKENIZABLE) from None  # sqlglot's message quotes the text
    found = []
    for colon, name in itertools.pairwise(tokens):
        if (
            colon.token_type == TokenType.COLON
            and name.start == colon.end + 1
            and re.fullmatch(r"[A-Za-z_]\w*", name.text)
        ):
            found.append((name.text.lower(), colon.start, name.end + 1))
    return found
