"""From Trino SQL to a DuckDB plan.

sqlglot parses the Trino dialect and writes DuckDB's. On the way the engine:
- refuses what it cannot translate faithfully (NOT_SUPPORTED, naming the construct), before any
  side effect, rather than returning a different answer than Trino would;
- answers Trino's `system` catalog and the catalog-scoped `information_schema` from snapshots
  (DuckDB's own information_schema spans every attached database);
- classifies the statement so the response carries Trino's `updateType` and `updateCount`.
Statements Trino's coordinator handles itself (USE, SET SESSION, PREPARE, EXECUTE, CALL, ...)
are recognised in `session_command` and never reach DuckDB.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import sqlglot
from sqlglot import exp
from sqlglot.dialects.trino import Trino
from sqlglot.errors import ErrorLevel, ParseError, TokenError, UnsupportedError

from report_pipeline.local_trino import checks, functions, semantics
from report_pipeline.local_trino.errors import TrinoError


class Catalog(Protocol):
    """What translation needs to know about the data and the session: implemented by the engine."""

    session: Any

    def qualify(self, catalog: str | None, schema: str | None) -> tuple[str, str]: ...

    def system_table(
        self, catalog: str, schema: str, table: str, hidden: bool = False
    ) -> exp.Expr | None: ...

    def has_function(self, name: str) -> bool: ...

    def column_types(self) -> dict: ...


TableName = tuple[str, str, str]  # catalog, schema, table


@dataclass
class Plan:
    duckdb_sql: str
    update_type: str | None = None  # None for a query that returns rows
    counts_rows: bool = False  # whether the response carries updateCount
    tables: list[TableName] = field(default_factory=list)  # every table read or written
    target: TableName | None = None  # the table a DDL or DML statement changes
    if_exists: bool = False  # DROP ... IF EXISTS
    schema_target: tuple[str, str] | None = None  # the schema CREATE/DROP SCHEMA names
    # output column -> the Trino type DuckDB lacks
    output_types: dict[int, str] = field(default_factory=dict)
    # CREATE TABLE's varchar(n) columns
    declared_types: dict[str, str] = field(default_factory=dict)


class _TrinoNames(Trino):
    """Trino's dialect, keeping an unknown type name as a user-defined type so that the analysis
    (checks.py) fails on it as Trino does, rather than the parser with a syntax error."""

    SUPPORTS_USER_DEFINED_TYPES = True


def parse(sql: str) -> exp.Expr:
    """Parse exactly one Trino statement; a trailing semicolon is a syntax error, as in Trino."""
    try:
        parsed = sqlglot.parse(sql, read=_TrinoNames)
    except (ParseError, TokenError) as error:
        raise _syntax_error(error) from None
    statements = [s for s in parsed if s is not None]
    if not statements:
        raise TrinoError(
            "SYNTAX_ERROR",
            "line 1:1: mismatched input '<EOF>'. Expecting: statement",
            line=1,
            column=1,
        )
    if len(statements) > 1 or sql.rstrip().endswith(";"):
        raise TrinoError(
            "SYNTAX_ERROR",
            "mismatched input ';': a request holds exactly one statement",
            line=1,
            column=1,
        )
    return statements[0]


def _syntax_error(error: Exception) -> TrinoError:
    details = getattr(error, "errors", None) or [{}]
    first = details[0]
    line, column = first.get("line") or 1, first.get("col") or 1
    description = first.get("description") or str(error).splitlines()[0]
    # valid Trino the parser cannot read (INTERVAL ... DAY TO SECOND)
    if "is not supported" in description:
        return TrinoError("NOT_SUPPORTED", f"{description} by the local engine")
    return TrinoError(
        "SYNTAX_ERROR", f"line {line}:{column}: {description}", line=line, column=column
    )


def plan(tree: exp.Expr, catalog: Catalog) -> Plan:
    """Translate one parsed Trino statement into DuckDB SQL, or fail as Trino would."""
    if isinstance(tree, exp.Command):
        keyword = str(tree.this).upper()
        raise TrinoError(
            "NOT_SUPPORTED", f"Statement {keyword} is not supported by the local engine"
        )
    tree = tree.copy()
    semantics.session_functions(tree, catalog.session)
    checks.check(tree, catalog)
    semantics.refuse_literal_string_columns(tree)
    semantics.canonical_json(tree)
    _check_functions(tree, catalog)
    tree = tree.transform(_rewrite_table_functions).transform(_rewrite_functions)
    tree = functions.rewrite_tree(tree, catalog.session)
    _name_output_columns(tree)
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    # information_schema.columns has a hidden `comment` column: there only when the statement names
    # it
    names_comment = any(column.name.lower() == "comment" for column in tree.find_all(exp.Column))
    result = Plan("")
    target_node = _target_node(tree)
    if _is_schema_ddl(tree):
        # In CREATE/DROP SCHEMA the "table" node names the schema itself: [catalog.]schema
        node = target_node
        assert node is not None  # the parser refuses CREATE/DROP SCHEMA without a name
        schema_catalog, schema = catalog.qualify(node.catalog or None, node.db)
        node.set("catalog", exp.to_identifier(schema_catalog))
        result.schema_target = (schema_catalog, schema)
    for table in list(tree.find_all(exp.Table)):
        if table is target_node and result.schema_target is not None:
            continue
        if not isinstance(table.this, exp.Identifier) or table.find_ancestor(exp.AlterRename):
            continue
        if not table.db and table.name.lower() in ctes:
            continue
        name_catalog, name_schema = catalog.qualify(table.catalog or None, table.db or None)
        name = (name_catalog, name_schema, table.name.lower())
        replacement = catalog.system_table(*name, hidden=names_comment)
        if replacement is not None:
            if table is target_node:
                raise TrinoError("NOT_SUPPORTED", f"Table {'.'.join(name)} is read-only")
            alias = table.alias_or_name
            table.replace(
                exp.Subquery(this=replacement, alias=exp.TableAlias(this=exp.to_identifier(alias)))
            )
            continue
        table.set("catalog", exp.to_identifier(name_catalog))
        table.set("db", exp.to_identifier(name_schema))
        result.tables.append(name)
        if table is target_node:
            result.target = name
    if isinstance(tree, exp.Comment) and isinstance(tree.this, exp.Column):
        result.target = _qualify_commented_column(tree.this, catalog)
        result.tables.append(result.target)
    result.declared_types = semantics.declared_types(tree)
    tree = _rewrite_create(tree)
    result.output_types = semantics.apply(tree, catalog.column_types(), catalog.session)
    tree = functions.rewrite_typed(tree)  # needs the types semantics inferred
    tree = tree.transform(_rewrite_version)
    result.update_type, result.counts_rows = _update_type(tree)
    result.if_exists = bool(tree.args.get("exists")) and isinstance(tree, exp.Drop)
    try:
        result.duckdb_sql = tree.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as error:
        raise TrinoError("NOT_SUPPORTED", f"Not supported by the local engine: {error}") from None
    return result


ENGINE_VERSION = "476-local"


def _name_output_columns(tree: exp.Expr) -> None:
    """Trino names an output column after its column reference or alias, and any other expression
    `_colN` by its position; DuckDB would use the expression's text."""
    select = tree
    while isinstance(select, exp.SetOperation):  # a UNION's names are its first SELECT's
        select = select.this
    if isinstance(select, exp.Subquery):
        select = select.unnest()
    if isinstance(tree, (exp.Create, exp.Insert)):
        return
    if not isinstance(select, exp.Select):
        return
    for index, expression in enumerate(select.expressions):
        if isinstance(expression, (exp.Alias, exp.Column, exp.Star, exp.Dot)):
            continue
        expression.replace(exp.alias_(expression.copy(), f"_col{index}", quoted=True))


def _qualify_commented_column(column: exp.Column, catalog: Catalog) -> TableName:
    parts = [p.name for p in column.parts[:-1]]  # [[catalog.]schema.]table
    if not parts:
        raise TrinoError("SYNTAX_ERROR", "COMMENT ON COLUMN names the column as table.column")
    table_catalog, table_schema = catalog.qualify(*([None] * (3 - len(parts)) + parts[:-1]))
    name = (table_catalog, table_schema, parts[-1].lower())
    column.set("catalog", exp.to_identifier(table_catalog))
    column.set("db", exp.to_identifier(table_schema))
    column.set("table", exp.to_identifier(name[2]))
    return name


def _rewrite_create(tree: exp.Expr) -> exp.Expr:
    """CTAS ... WITH NO DATA and CREATE TABLE (LIKE t), which DuckDB spells as a CTAS of no rows."""
    if not isinstance(tree, exp.Create):
        return tree
    properties = tree.args.get("properties")
    no_data = [
        p
        for p in (properties.expressions if properties else [])
        if isinstance(p, exp.WithDataProperty)
    ]
    if no_data and isinstance(tree.expression, exp.Query):
        for prop in no_data:
            if not prop.args.get("no"):
                continue
            prop.pop()
            tree.set(
                "expression", exp.select("*").from_(tree.expression.subquery("source")).limit(0)
            )
        if properties is not None and not properties.expressions:
            properties.pop()
    schema = tree.this
    if (
        isinstance(schema, exp.Schema)
        and schema.expressions
        and all(isinstance(e, exp.LikeProperty) for e in schema.expressions)
    ):
        if len(schema.expressions) != 1:
            raise TrinoError(
                "NOT_SUPPORTED",
                "CREATE TABLE with several LIKE clauses is not supported by the local engine",
            )
        source = schema.expressions[0].this
        tree.set("this", schema.this)
        tree.set("expression", exp.select("*").from_(source.copy()).limit(0))
        tree.meta["like"] = True  # a table definition, not a CTAS: Trino reports no row count
    return tree


def _target_node(tree: exp.Expr) -> exp.Table | None:
    """The table a DDL or DML statement creates, drops or changes."""
    if isinstance(tree, exp.TruncateTable):
        return (tree.expressions or [None])[0]
    if isinstance(tree, exp.Comment) and isinstance(tree.this, exp.Column):
        return None  # COMMENT ON COLUMN: qualified on its own (_qualify_commented_column)
    if not isinstance(
        tree,
        (
            exp.Create,
            exp.Drop,
            exp.Insert,
            exp.Delete,
            exp.Update,
            exp.Merge,
            exp.Alter,
            exp.Comment,
        ),
    ):
        return None
    # DROP names a list
    node = tree.this if tree.this is not None else (tree.args.get("tables") or [None])[0]
    if isinstance(node, exp.Schema):  # CREATE TABLE t (columns) / INSERT INTO t (columns)
        node = node.this
    return node if isinstance(node, exp.Table) else None


def _is_schema_ddl(tree: exp.Expr) -> bool:
    return (
        isinstance(tree, (exp.Create, exp.Drop))
        and (tree.args.get("kind") or "").upper() == "SCHEMA"
    )


def _rewrite_version(node: exp.Expr) -> exp.Expr:
    # Trino's version() is the server version; DuckDB's would name DuckDB.
    if isinstance(node, exp.CurrentVersion):
        return exp.Literal.string(ENGINE_VERSION)
    return node


_SHIFTS = {"bitwise_left_shift": exp.BitwiseLeftShift, "bitwise_right_shift": exp.BitwiseRightShift}
_DOUBLE_CONSTANTS = {"nan": "NaN", "infinity": "Infinity"}


def _rewrite_functions(node: exp.Expr) -> exp.Expr:
    if not isinstance(node, exp.Anonymous):
        return node
    name = node.name.lower()
    # Trino's shift functions are DuckDB's << and >> operators (on the non-negative values they are
    # meant for, the same results)
    if name in _SHIFTS and len(node.expressions) == 2:
        value, shift = node.expressions
        return _SHIFTS[name](this=value.copy(), expression=shift.copy())
    if name in _DOUBLE_CONSTANTS and not node.expressions:
        return exp.cast(exp.Literal.string(_DOUBLE_CONSTANTS[name]), exp.DataType.Type.DOUBLE)
    return node


# Trino's built-in table functions: sequence() has a DuckDB equivalent, the others none.
_TABLE_FUNCTIONS = {"sequence", "exclude_columns", "query", "table_changes"}


def _rewrite_table_functions(node: exp.Expr) -> exp.Expr:
    """`TABLE(sequence(start, stop[, step]))` as DuckDB's range; any other function in FROM is not a
    table Trino knows (DuckDB's read_csv and friends stay out of reach)."""
    if (
        not isinstance(node, exp.Table)
        or isinstance(node.this, exp.Identifier)
        or node.this is None
    ):
        return node
    call = node.this
    if (
        isinstance(call, exp.Anonymous)
        and call.name.upper() == "TABLE"
        and len(call.expressions) == 1
    ):
        inner = call.expressions[0]
        name = _function_name(inner)
        if name in ("sequence", "system.builtin.sequence") and isinstance(
            inner, exp.GenerateSeries
        ):
            bounds = [_kwarg_value(inner.args.get(k)) for k in ("start", "end", "step")]
            series = exp.Anonymous(
                this="generate_series", expressions=[b for b in bounds if b is not None]
            )
            select = exp.select(exp.column("generate_series").as_("sequential_number")).from_(
                series
            )
            alias = node.args.get("alias") or exp.TableAlias(this=exp.to_identifier("sequence"))
            return exp.Subquery(this=select, alias=alias.copy())
        if name.rsplit(".", 1)[-1] in _TABLE_FUNCTIONS:
            raise TrinoError(
                "NOT_SUPPORTED", f"Table function {name} is not supported by the local engine"
            )
        raise TrinoError("FUNCTION_NOT_FOUND", f"Table function '{name}' not registered")
    raise TrinoError(
        "SYNTAX_ERROR",
        f"Table functions are called as TABLE(function(...)), not {_function_name(call)}(...)",
    )


def _function_name(node: exp.Expr) -> str:
    if isinstance(node, exp.GenerateSeries):
        return "sequence"
    if isinstance(node, exp.Dot):
        return (
            ".".join(part.name.lower() for part in node.flatten())
            if hasattr(node, "flatten")
            else node.sql()
        )
    if isinstance(node, exp.Func):
        return (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
    return node.sql(dialect="trino").lower()


def _kwarg_value(node: exp.Expr | None) -> exp.Expr | None:
    if isinstance(node, exp.Kwarg):
        return node.expression.copy()
    return node.copy() if node is not None else None


def _trino_functions() -> frozenset[str]:
    text = (Path(__file__).with_name("trino_functions.txt")).read_text()
    return frozenset(
        line.strip().lower()
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )


TRINO_FUNCTIONS = _trino_functions()


def _check_functions(tree: exp.Expr, catalog: Catalog) -> None:
    # A function sqlglot does not know is passed through by name: one Trino lacks fails as in Trino;
    # one DuckDB lacks has no translation (format_datetime's Joda patterns, say): say so instead of
    # answering something else.
    for call in tree.find_all(exp.Anonymous):
        name = call.name.lower()
        if name in functions.ANONYMOUS:
            continue  # answered (or refused) by functions.py
        if name == "table" and isinstance(call.parent, exp.Table):
            continue  # TABLE(function(...)) in FROM: a table function, checked on its own
        if name not in TRINO_FUNCTIONS:
            raise TrinoError("FUNCTION_NOT_FOUND", f"Function '{name}' not registered")
        if not catalog.has_function(name) and name not in _SHIFTS and name not in _DOUBLE_CONSTANTS:
            raise TrinoError(
                "NOT_SUPPORTED", f"Function {name} is not supported by the local engine"
            )


_DDL_KINDS = {"TABLE", "SCHEMA", "VIEW"}


def _update_type(tree: exp.Expr) -> tuple[str | None, bool]:
    if isinstance(tree, exp.Query):
        return None, False
    if isinstance(tree, exp.Create):
        kind = (tree.args.get("kind") or "TABLE").upper()
        if kind not in _DDL_KINDS:
            raise TrinoError("NOT_SUPPORTED", f"CREATE {kind} is not supported by the local engine")
        as_select = (
            kind == "TABLE" and isinstance(tree.expression, exp.Query) and not tree.meta.get("like")
        )
        return f"CREATE {kind}", as_select
    if isinstance(tree, exp.Drop):
        kind = (tree.args.get("kind") or "TABLE").upper()
        if kind not in _DDL_KINDS:
            raise TrinoError("NOT_SUPPORTED", f"DROP {kind} is not supported by the local engine")
        return f"DROP {kind}", False
    if isinstance(tree, exp.TruncateTable):
        return "TRUNCATE TABLE", False
    if isinstance(tree, exp.Comment) and (tree.args.get("kind") or "").upper() in (
        "TABLE",
        "COLUMN",
    ):
        return "COMMENT", False
    for node_type, update_type in (
        (exp.Insert, "INSERT"),
        (exp.Delete, "DELETE"),
        (exp.Update, "UPDATE"),
        (exp.Merge, "MERGE"),
    ):
        if isinstance(tree, node_type):
            return update_type, True
    if isinstance(tree, exp.Alter):
        actions = tree.args.get("actions") or []
        if any(isinstance(a, exp.AlterRename) for a in actions):
            return "RENAME TABLE", False
        for action_type, update_type in (
            (exp.ColumnDef, "ADD COLUMN"),
            (exp.RenameColumn, "RENAME COLUMN"),
            (exp.Drop, "DROP COLUMN"),
            (exp.AlterColumn, "SET COLUMN TYPE"),
        ):
            if any(isinstance(a, action_type) for a in actions):
                return update_type, False
        raise TrinoError(
            "NOT_SUPPORTED",
            f"ALTER TABLE {tree.sql(dialect='trino')[:60]} is not supported by the local engine",
        )
    raise TrinoError(
        "NOT_SUPPORTED", f"Statement {tree.key.upper()} is not supported by the local engine"
    )


# --- Statements the coordinator answers itself -------------------------------------------------


@dataclass(frozen=True)
class SessionCommand:
    kind: str  # execute_immediate, prepare, execute, deallocate, use, set_session, ...
    args: dict


_STRING = r"'((?:[^']|'')*)'"
_IDENT = r'("(?:[^"]|"")+"|[A-Za-z_][\w$@]*)'
_COMMANDS: list[tuple[str, re.Pattern]] = [
    (
        "execute_immediate",
        re.compile(
            rf"^\s*EXECUTE\s+IMMEDIATE\s+{_STRING}\s*(?:USING\s+(?P<using>.+))?$", re.I | re.S
        ),
    ),
    ("prepare", re.compile(rf"^\s*PREPARE\s+{_IDENT}\s+FROM\s+(?P<body>.+)$", re.I | re.S)),
    ("execute", re.compile(rf"^\s*EXECUTE\s+{_IDENT}\s*(?:USING\s+(?P<using>.+))?$", re.I | re.S)),
    ("deallocate", re.compile(rf"^\s*DEALLOCATE\s+PREPARE\s+{_IDENT}\s*$", re.I | re.S)),
    ("use", re.compile(rf"^\s*USE\s+{_IDENT}(?:\s*\.\s*{_IDENT})?\s*$", re.I | re.S)),
    (
        "set_session",
        re.compile(r"^\s*SET\s+SESSION\s+(?P<name>[\w.]+)\s*=\s*(?P<value>.+?)\s*$", re.I | re.S),
    ),
    ("reset_session", re.compile(r"^\s*RESET\s+SESSION\s+(?P<name>[\w.]+)\s*$", re.I | re.S)),
    ("call", re.compile(r"^\s*CALL\s+(?P<procedure>[\w.\"]+)\s*\((?P<args>.*)\)\s*$", re.I | re.S)),
    ("show_catalogs", re.compile(r"^\s*SHOW\s+CATALOGS\s*$", re.I)),
    (
        "explain",
        re.compile(r"^\s*EXPLAIN\s+(?:\((?P<options>[^)]*)\)\s*)?(?P<body>.+)$", re.I | re.S),
    ),
    ("set_time_zone", re.compile(r"^\s*SET\s+TIME\s+ZONE\s+(?P<zone>.+?)\s*$", re.I | re.S)),
    ("describe_output", re.compile(rf"^\s*DESCRIBE\s+OUTPUT\s+{_IDENT}\s*$", re.I)),
    (
        "show_columns",
        re.compile(
            rf"^\s*(?:DESCRIBE|SHOW\s+COLUMNS\s+(?:FROM|IN))\s+{_IDENT}"
            rf"(?:\s*\.\s*{_IDENT})?(?:\s*\.\s*{_IDENT})?\s*$",
            re.I,
        ),
    ),
    ("show_schemas", re.compile(rf"^\s*SHOW\s+SCHEMAS(?:\s+(?:FROM|IN)\s+{_IDENT})?\s*$", re.I)),
    (
        "show_tables",
        re.compile(
            rf"^\s*SHOW\s+TABLES(?:\s+(?:FROM|IN)\s+{_IDENT}(?:\s*\.\s*{_IDENT})?)?\s*$", re.I
        ),
    ),
]


def _unquote(identifier: str | None) -> str | None:
    if identifier is None:
        return None
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier.lower()


def session_command(sql: str) -> SessionCommand | None:
    """Recognise a statement the coordinator handles itself, or None for one DuckDB runs."""
    for kind, pattern in _COMMANDS:
        match = pattern.match(sql)
        if not match:
            continue
        groups = [g for g in match.groups()]
        if kind == "execute_immediate":
            return SessionCommand(
                kind, {"sql": groups[0].replace("''", "'"), "using": match.group("using")}
            )
        if kind == "prepare":
            return SessionCommand(kind, {"name": _unquote(groups[0]), "sql": match.group("body")})
        if kind == "execute":
            return SessionCommand(
                kind, {"name": _unquote(groups[0]), "using": match.group("using")}
            )
        if kind in ("deallocate", "describe_output"):
            return SessionCommand(kind, {"name": _unquote(groups[0])})
        if kind == "show_columns":
            parts = [_unquote(g) for g in groups if g is not None]
            return SessionCommand(kind, {"table": tuple([None] * (3 - len(parts)) + parts)})
        if kind == "use":
            first, second = _unquote(groups[0]), _unquote(groups[1])
            catalog, schema = (first, second) if second else (None, first)
            return SessionCommand(kind, {"catalog": catalog, "schema": schema})
        if kind == "explain":
            options = {
                o.strip().upper() for o in (match.group("options") or "").split(",") if o.strip()
            }
            return SessionCommand(kind, {"options": options, "body": match.group("body")})
        if kind == "set_time_zone":
            return SessionCommand(kind, {"zone": _time_zone_value(match.group("zone"))})
        if kind in ("set_session", "reset_session", "call"):
            return SessionCommand(kind, match.groupdict())
        if kind == "show_schemas":
            return SessionCommand(kind, {"catalog": _unquote(groups[0])})
        if kind == "show_tables":
            first, second = _unquote(groups[0]), _unquote(groups[1])
            catalog, schema = (first, second) if second else (None, first)
            return SessionCommand(kind, {"catalog": catalog, "schema": schema})
        return SessionCommand(kind, {})
    return None


@dataclass(frozen=True)
class Origin:
    """Where an output column comes from, as DESCRIBE OUTPUT tells it."""

    table: TableName | None = None
    aliased: bool = False
    column: str | None = None  # the source column's name


def output_origins(tree: exp.Expr, names: list[str], catalog: Catalog) -> list[Origin]:
    """For each output column of a query, its source table (a plain column reference) and whether
    it is aliased; columns a `*` expands take the table it names or the only one in FROM."""
    select = tree if isinstance(tree, exp.Select) else None
    if select is None:
        return [Origin() for _ in names]
    sources: dict[str, TableName] = {}
    for table in select.find_all(exp.Table):
        if isinstance(table.this, exp.Identifier) and table.find_ancestor(exp.Select) is select:
            qualified = (
                *catalog.qualify(table.catalog or None, table.db or None),
                table.name.lower(),
            )
            sources[table.alias_or_name.lower()] = qualified
    only = next(iter(sources.values())) if len(sources) == 1 else None
    origins: list[Origin] = []
    for expression in select.expressions:
        aliased = isinstance(expression, exp.Alias)
        inner = expression.this if aliased else expression
        if isinstance(inner, exp.Star) or (
            isinstance(inner, exp.Column) and isinstance(inner.this, exp.Star)
        ):
            source = sources.get(inner.table.lower()) if isinstance(inner, exp.Column) else only
            start = len(origins)
            origins.extend(
                Origin(source, column=names[i].lower())
                for i in range(
                    start,
                    len(names)
                    - (len(select.expressions) - 1 - select.expressions.index(expression)),
                )
            )
            continue
        source = None
        if isinstance(inner, exp.Column):
            source = sources.get(inner.table.lower()) if inner.table else only
        origins.append(
            Origin(source, aliased, inner.name.lower() if isinstance(inner, exp.Column) else None)
        )
    return (origins + [Origin()] * len(names))[: len(names)]


def _time_zone_value(text: str) -> str | None:
    """SET TIME ZONE's argument: a zone name or offset ('+05:30', INTERVAL '-08:00' HOUR TO MINUTE),
    None for LOCAL (the client's own zone again)."""
    if text.strip().upper() == "LOCAL":
        return None
    try:
        value = sqlglot.parse_one(f"SELECT {text}", read="trino").expressions[0]
    except (ParseError, TokenError) as error:
        raise _syntax_error(error) from None
    if isinstance(value, exp.Literal) and value.is_string:
        return value.name
    if isinstance(value, exp.Interval) and isinstance(value.this, exp.Literal):
        return value.this.name
    raise TrinoError(
        "NOT_SUPPORTED", f"SET TIME ZONE {text.strip()} is not supported by the local engine"
    )


def parse_parameters(using: str | None) -> list[exp.Expr]:
    """The USING list of EXECUTE as expressions (the client renders values as Trino literals)."""
    if not using:
        return []
    try:
        select = sqlglot.parse_one(f"SELECT {using}", read="trino")
    except (ParseError, TokenError) as error:
        raise _syntax_error(error) from None
    return list(select.expressions)


def bind_parameters(sql: str, parameters: list[exp.Expr]) -> str:
    """Put each parameter where its `?` stands, token-aware (a `?` inside a string stays)."""
    marks = _placeholders(sql)
    if len(marks) != len(parameters):
        raise TrinoError(
            "INVALID_PARAMETER_USAGE",
            f"Incorrect number of parameters: expected {len(marks)} but found {len(parameters)}",
        )
    pieces, position = [], 0
    for (start, end), value in zip(marks, parameters, strict=True):
        pieces.append(sql[position:start])
        pieces.append(value.sql(dialect="trino"))
        position = end + 1
    pieces.append(sql[position:])
    return "".join(pieces)


def _placeholders(sql: str, offset: int = 0) -> list[tuple[int, int]]:
    """(start, end) of each `?` placeholder token."""
    try:
        tokens = sqlglot.tokenize(sql, read="trino")
    except TokenError as error:
        raise _syntax_error(error) from None
    if len(tokens) == 2 and tokens[0].token_type == sqlglot.TokenType.COMMAND:
        # sqlglot keeps the rest of an opaque command (CALL ...) as one string token: look inside it
        start = sql.find(tokens[1].text, tokens[0].end + 1)
        return _placeholders(tokens[1].text, offset + start)
    return [
        (offset + t.start, offset + t.end)
        for t in tokens
        if t.token_type == sqlglot.TokenType.PLACEHOLDER and t.text == "?"
    ]


_ARGUMENT = re.compile(
    rf"\s*(?:(?P<name>\w+)\s*=>\s*)?(?:{_STRING}|(?P<number>-?\d+(?:\.\d+)?))\s*(?:,|$)", re.S
)


def procedure_arguments(text: str, names: list[str]) -> dict[str, str]:
    """CALL arguments, positional or `name => value`, as a dict keyed by parameter name."""
    result: dict[str, str] = {}
    position, index = 0, 0
    text = text.strip()
    while position < len(text):
        match = _ARGUMENT.match(text, position)
        if not match or match.end() == position:
            raise TrinoError(
                "INVALID_PROCEDURE_ARGUMENT", f"Cannot parse procedure arguments: {text}"
            )
        name = (match.group("name") or (names[index] if index < len(names) else "")).lower()
        if name not in names:
            raise TrinoError(
                "INVALID_PROCEDURE_ARGUMENT", f"Unknown argument name: {name or index + 1}"
            )
        string = match.group(2)
        result[name] = string.replace("''", "'") if string is not None else match.group("number")
        position, index = match.end(), index + 1
    return result


def literal_value(text: str) -> str:
    """A SET SESSION value: a string literal, a number or a boolean, as its text."""
    text = text.strip()
    string = re.fullmatch(_STRING, text, re.S)
    if string:
        return string.group(1).replace("''", "'")
    if re.fullmatch(r"-?\d+(?:\.\d+)?|true|false", text, re.I):
        return text.lower()
    raise TrinoError(
        "INVALID_SESSION_PROPERTY", f"Session property value must be a literal: {text}"
    )
