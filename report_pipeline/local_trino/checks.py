"""Checks Trino's analyzer makes before anything runs, where DuckDB would answer or fail otherwise.

`check` runs on the parsed statement before translation; it raises the TrinoError Trino raises.
Type checks only judge operands whose type is certain (literals, casts, table columns): Trino has no
implicit coercion between varchar and numbers, dates or booleans, where DuckDB casts string
literals silently (`1 = '1'`, `CASE ... THEN 1 ELSE 'one'`, `INSERT ... VALUES ('1')`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import zoneinfo
from typing import Any

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify_columns import qualify_columns
from sqlglot.schema import MappingSchema

from report_pipeline.local_trino.errors import TrinoError

log = logging.getLogger(__name__)
T = exp.DataType.Type


def check(tree: exp.Expr, catalog: Any = None) -> None:
    _types_exist(tree)
    _literals(tree)
    _limits(tree)
    _column_aliases(tree)
    _create_table(tree)
    typed = _annotated(tree, catalog)
    if typed is not None:
        _type_mismatches(typed)
        _insert_types(typed, catalog)
    if catalog is not None:
        _connector_support(tree, catalog)


# --- names and literals ---------------------------------------------------------------------------


def _types_exist(tree: exp.Expr) -> None:
    # The parser keeps a type name it does not know as a user-defined type; Trino has none.
    for data_type in tree.find_all(exp.DataType):
        if data_type.this != T.USERDEFINED:
            continue
        name = str(data_type.args.get("kind") or data_type.sql(dialect="trino")).lower()
        column = data_type.parent if isinstance(data_type.parent, exp.ColumnDef) else None
        if column is not None:
            raise TrinoError("TYPE_NOT_FOUND", f"Unknown type '{name}' for column '{column.name}'")
        raise TrinoError("TYPE_MISMATCH", f"Unknown type: {name}")


_DATE = r"\s*(?P<year>[+-]?\d+)-(?P<month>\d{1,2})-(?P<day>\d{1,2})"
_DATE_LITERAL = re.compile(_DATE + r"\s*")
_TIMESTAMP_LITERAL = re.compile(
    _DATE + r"(?: +(?P<hour>\d{1,2}):(?P<minute>\d{1,2})(?::(?P<second>\d{1,2})(?:\.\d+)?)?)?"
    r"\s*(?P<zone>\S.*?)?\s*"
)
_OFFSET = re.compile(r"[+-]\d{1,2}(?::?\d{2})?")


def _literals(tree: exp.Expr) -> None:
    """DATE '...' and TIMESTAMP '...' with a value Trino cannot read fail at analysis, as
    INVALID_LITERAL (a CAST of the same string fails at run time, as INVALID_CAST_ARGUMENT)."""
    for cast in tree.find_all(exp.Cast):
        # the parser builds a typed literal as a bare Cast; CAST(...) always carries its other args
        if (
            "format" in cast.args
            or not isinstance(cast.this, exp.Literal)
            or not cast.this.is_string
        ):
            continue
        kind = cast.to.this
        if kind == T.DATE:
            name, valid = "DATE", _valid_date(cast.this.this)
        elif kind in (T.TIMESTAMP, T.TIMESTAMPTZ):
            name, valid = "TIMESTAMP", _valid_timestamp(cast.this.this)
        else:
            continue
        if not valid:
            raise TrinoError("INVALID_LITERAL", f"'{cast.this.this}' is not a valid {name} literal")


def _wall_time(match: re.Match) -> dt.datetime | None:
    """The date and time a literal names; None where the year is outside what Python represents
    (left to DuckDB), and ValueError where no such day or time exists."""
    year = int(match.group("year"))
    if not 1 <= year <= 9999:
        return None
    hour = minute = second = 0
    if "hour" in match.re.groupindex:
        hour, minute, second = (int(match.group(g) or 0) for g in ("hour", "minute", "second"))
    return dt.datetime(
        year, int(match.group("month")), int(match.group("day")), hour, minute, second
    )


def _valid_date(text: str) -> bool:
    match = _DATE_LITERAL.fullmatch(text)
    if not match:
        return False
    try:
        _wall_time(match)
    except ValueError:
        return False
    return True


def _valid_timestamp(text: str) -> bool:
    match = _TIMESTAMP_LITERAL.fullmatch(text)
    if not match:
        return False
    try:
        wall = _wall_time(match)
    except ValueError:
        return False
    zone = match.group("zone")
    if zone is None or _OFFSET.fullmatch(zone) or zone.upper() in ("UTC", "Z", "GMT", "UT"):
        return True
    try:
        tz = zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    if wall is None:
        return True
    # a wall time in a daylight-saving gap does not exist in that zone: Trino refuses it
    there = wall.replace(tzinfo=tz)
    return there.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None) == wall


def _limits(tree: exp.Expr) -> None:
    # Trino's grammar takes only an unsigned integer (or ?) after LIMIT and OFFSET
    for node in tree.find_all(exp.Limit, exp.Offset):
        if isinstance(node.expression, exp.Neg):
            keyword = "LIMIT" if isinstance(node, exp.Limit) else "OFFSET"
            raise TrinoError(
                "SYNTAX_ERROR", f"mismatched input '-' after {keyword}. Expecting: <integer>, ALL"
            )


def _column_aliases(tree: exp.Expr) -> None:
    """`AS t(a, b)` must name every column of the relation it renames (DuckDB renames a prefix)."""
    for alias in tree.find_all(exp.TableAlias):
        names = alias.args.get("columns") or []
        relation = alias.parent
        if not names or relation is None:
            continue
        width = _width(relation)
        if width is not None and width != len(names):
            raise TrinoError(
                "MISMATCHED_COLUMN_ALIASES",
                f"Column alias list has {len(names)} entries but '{alias.name}' has {width} "
                "columns available",
            )


def _width(relation: exp.Expr) -> int | None:
    """How many columns a VALUES list or a subquery has, where the tree alone tells."""
    if isinstance(relation, exp.Values):
        rows = relation.expressions
        first = rows[0] if rows else None
        return (
            len(first.expressions)
            if isinstance(first, exp.Tuple)
            else (1 if first is not None else None)
        )
    if isinstance(relation, exp.Subquery):
        select = relation.this
        while isinstance(select, exp.SetOperation):
            select = select.this
        if isinstance(select, exp.Select) and not any(
            isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
            for e in select.expressions
        ):
            return len(select.expressions)
    return None


def _create_table(tree: exp.Expr) -> None:
    if not isinstance(tree, exp.Create) or (tree.args.get("kind") or "").upper() != "TABLE":
        return
    schema = tree.this if isinstance(tree.this, exp.Schema) else None
    if schema is not None:
        seen: set[str] = set()
        for column in schema.expressions:
            if isinstance(column, exp.ColumnDef):
                if column.name.lower() in seen:
                    raise TrinoError(
                        "DUPLICATE_COLUMN_NAME",
                        f"Column name '{column.name}' specified more than once",
                    )
                seen.add(column.name.lower())
    query = tree.expression
    if not isinstance(query, exp.Query) or (schema is not None and schema.expressions):
        return
    select: exp.Expr = query
    while isinstance(select, exp.SetOperation):
        select = select.this
    if isinstance(select, exp.Subquery):
        select = select.unnest()
    if not isinstance(select, exp.Select):
        return
    for position, projection in enumerate(select.expressions, start=1):
        if isinstance(projection, (exp.Star, exp.Column)):
            continue
        if not isinstance(projection, exp.Alias):
            # Trino names an unaliased expression _colN in a query, but a table's column needs a
            # name
            raise TrinoError(
                "MISSING_COLUMN_NAME", f"Column name not specified at position {position}"
            )
        if isinstance(projection.this, exp.Null):
            raise TrinoError("COLUMN_TYPE_UNKNOWN", f"Column type is unknown: {projection.alias}")


# --- types ----------------------------------------------------------------------------------------

_STRING = {T.VARCHAR, T.CHAR, T.TEXT, T.NVARCHAR, T.NCHAR}
_NUMERIC = exp.DataType.NUMERIC_TYPES
_TEMPORAL = exp.DataType.TEMPORAL_TYPES


def _family(node: exp.Expr) -> str | None:
    """The type family of an operand whose type is certain, else None (no judgement)."""
    if isinstance(node, exp.Paren):
        return _family(node.this)
    if isinstance(node, exp.Neg):
        return _family(node.this)
    if not isinstance(node, (exp.Literal, exp.Cast, exp.Column, exp.Boolean)) or isinstance(
        node, exp.TryCast
    ):
        return None
    return _type_family(node.type)


def _type_family(data_type: exp.DataType | None) -> str | None:
    if data_type is None:
        return None
    kind = data_type.this
    if kind in _STRING:
        return "string"
    if kind in _NUMERIC:
        return "number"
    if kind in _TEMPORAL:
        return "temporal"
    if kind == T.BOOLEAN:
        return "boolean"
    return None


def _sql_type(node: exp.Expr) -> str:
    data_type = node.type
    return data_type.sql(dialect="trino").lower() if data_type is not None else "unknown"


def _annotated(tree: exp.Expr, catalog: Any) -> exp.Expr | None:
    """A copy of the statement with each node's inferred type, table columns typed from the
    catalogs."""
    copy = tree.copy()
    schema = None
    if catalog is not None:
        ctes = {cte.alias_or_name.lower() for cte in copy.find_all(exp.CTE)}
        try:
            for table in copy.find_all(exp.Table):
                if not isinstance(table.this, exp.Identifier) or (
                    not table.db and table.name.lower() in ctes
                ):
                    continue
                name_catalog, name_schema = catalog.qualify(table.catalog or None, table.db or None)
                table.set("catalog", exp.to_identifier(name_catalog))
                table.set("db", exp.to_identifier(name_schema))
            schema = MappingSchema(catalog.column_types(), dialect="duckdb")
        except (TrinoError, SqlglotError, KeyError, ValueError):
            schema = None  # the planner reports a missing catalog or schema itself
    try:
        if schema is not None:
            # best effort: a column it cannot resolve is left untyped, and reported by the planner
            with contextlib.suppress(Exception):
                qualify_columns(copy, schema, expand_stars=False)
        return annotate_types(copy, schema=schema, dialect="trino")
    except Exception as error:
        log.debug("no types inferred: %s", error)
        return None


def _compatible(left: str | None, right: str | None) -> bool:
    return left is None or right is None or left == right


def _type_mismatches(tree: exp.Expr) -> None:
    for node in tree.walk():
        if isinstance(
            node,
            (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE, exp.NullSafeEQ, exp.NullSafeNEQ),
        ):
            if not _compatible(_family(node.this), _family(node.expression)):
                raise TrinoError(
                    "TYPE_MISMATCH",
                    f"Cannot apply operator: {_sql_type(node.this)} "
                    f"{node.key.upper()} {_sql_type(node.expression)}",
                )
        elif isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)):
            families = {_family(node.this), _family(node.expression)}
            if "string" in families and families & {"number", "temporal", "boolean"}:
                raise TrinoError(
                    "TYPE_MISMATCH",
                    f"Cannot apply operator: {_sql_type(node.this)} "
                    f"{node.key.upper()} {_sql_type(node.expression)}",
                )
        elif isinstance(node, exp.In) and node.expressions:
            _common([node.this, *node.expressions], "IN value and list items")
        elif isinstance(node, exp.Case):
            branches = [i.args.get("true") for i in node.args.get("ifs") or []] + [
                node.args.get("default")
            ]
            _common(branches, "CASE results")
        elif isinstance(node, exp.If):
            _common([node.args.get("true"), node.args.get("false")], "IF results")
        elif isinstance(node, exp.Coalesce):
            _common([node.this, *node.expressions], "COALESCE operands")
        elif isinstance(node, exp.Array):
            _common(node.expressions, "ARRAY elements")
        elif isinstance(node, exp.SetOperation):
            _set_operation(node)
        elif isinstance(node, (exp.Where, exp.Having)):
            family = _family(node.this)
            if family not in (None, "boolean"):
                clause = "WHERE" if isinstance(node, exp.Where) else "HAVING"
                raise TrinoError(
                    "TYPE_MISMATCH",
                    f"{clause} clause must evaluate to a boolean: "
                    f"actual type {_sql_type(node.this)}",
                )


def _common(operands: list[exp.Expr | None], what: str) -> None:
    known = [(o, _family(o)) for o in operands if o is not None]
    known = [(o, f) for o, f in known if f is not None]
    if len({f for _, f in known}) > 1:
        types = ", ".join(dict.fromkeys(_sql_type(o) for o, _ in known))
        raise TrinoError(
            "TYPE_MISMATCH",
            f"All {what} must be the same type or coercible to a common type. "
            f"Cannot find common type between {types}",
        )


def _projections(query: exp.Expr) -> list[exp.Expr] | None:
    while isinstance(query, exp.Subquery):
        query = query.this
    if isinstance(query, exp.SetOperation):
        return _projections(query.this)
    if isinstance(query, exp.Select):
        if any(
            isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
            for e in query.expressions
        ):
            return None
        return [e.this if isinstance(e, exp.Alias) else e for e in query.expressions]
    if isinstance(query, exp.Values):
        first = query.expressions[0] if query.expressions else None
        return list(first.expressions) if isinstance(first, exp.Tuple) else None
    return None


def _set_operation(node: exp.SetOperation) -> None:
    left, right = _projections(node.this), _projections(node.expression)
    if left is None or right is None or len(left) != len(right):
        return
    for index, (a, b) in enumerate(zip(left, right, strict=True), start=1):
        if not _compatible(_family(a), _family(b)):
            raise TrinoError(
                "TYPE_MISMATCH",
                f"column {index} in {node.key.upper()} query has incompatible types: "
                f"{_sql_type(a)}, {_sql_type(b)}",
            )


def _target_columns(insert: exp.Insert, catalog: Any) -> list[tuple[str, str]] | None:
    """(name, DuckDB type) of the columns an INSERT writes, in the order its values come."""
    target = insert.this
    listed = (
        [c.name.lower() for c in target.expressions] if isinstance(target, exp.Schema) else None
    )
    table = target.this if isinstance(target, exp.Schema) else target
    if not isinstance(table, exp.Table) or catalog is None:
        return None
    columns = (
        catalog.column_types().get(table.catalog, {}).get(table.db, {}).get(table.name.lower())
    )
    if not columns:
        return None
    if listed is None:
        return list(columns.items())
    if any(name not in columns for name in listed):
        return None
    return [(name, columns[name]) for name in listed]


def _insert_types(tree: exp.Expr, catalog: Any) -> None:
    if not isinstance(tree, exp.Insert):
        return
    columns = _target_columns(tree, catalog)
    if columns is None:
        return
    rows: list[list[exp.Expr]] = []
    if isinstance(tree.expression, exp.Values):
        rows = [
            list(r.expressions) if isinstance(r, exp.Tuple) else [r]
            for r in tree.expression.expressions
        ]
    else:
        projections = _projections(tree.expression)
        rows = [projections] if projections is not None else []
    table_types = [exp.DataType.build(t, dialect="duckdb") for _, t in columns]
    for row in rows:
        mismatch = len(row) != len(columns) or any(
            not _compatible(_family(value), _type_family(to))
            for value, to in zip(row, table_types, strict=True)
        )
        if mismatch:
            table = ", ".join(t.sql(dialect="trino").lower() for t in table_types)
            query = ", ".join(_sql_type(v) for v in row)
            raise TrinoError(
                "TYPE_MISMATCH",
                f"Insert query has mismatched column types: Table: [{table}], Query: [{query}]",
            )


# --- what the catalog's connector supports --------------------------------------------------------


def _connector_support(tree: exp.Expr, catalog: Any) -> None:
    """The `postgresql`-style catalogs do what Trino's PostgreSQL connector does: no views, no
    MERGE, and UPDATE and DELETE only where the whole statement can be pushed into PostgreSQL (SET
    to constants, WHERE of simple column predicates); anything else needs a merge Trino cannot do on
    a table without primary keys."""
    target = _target(tree)
    if target is None:
        return
    try:
        name_catalog, name_schema = catalog.qualify(target.catalog or None, target.db or None)
    except TrinoError:
        return
    if catalog.connector(name_catalog) != "postgresql":
        return
    if isinstance(tree, exp.Create) and (tree.args.get("kind") or "").upper() == "VIEW":
        raise TrinoError("NOT_SUPPORTED", "This connector does not support creating views")
    if not isinstance(tree, (exp.Merge, exp.Update, exp.Delete)):
        return
    merge = TrinoError(
        "NOT_SUPPORTED",
        "The connector can not perform merge on the target table without primary keys",
    )
    if isinstance(tree, exp.Merge):
        raise merge
    columns = (
        catalog.column_types()
        .get(name_catalog, {})
        .get(name_schema, {})
        .get(target.name.lower(), {})
    )
    if isinstance(tree, exp.Update):
        for assignment in tree.expressions:
            value = assignment.expression if isinstance(assignment, exp.EQ) else assignment
            if not _constant(value):
                raise merge
    where = tree.args.get("where")
    if where is not None and not _pushable(where.this, columns):
        raise merge


def _target(tree: exp.Expr) -> exp.Table | None:
    if (
        isinstance(tree, exp.Create) and (tree.args.get("kind") or "").upper() == "VIEW"
    ) or isinstance(tree, (exp.Merge, exp.Update, exp.Delete)):
        node = tree.this
    else:
        return None
    if isinstance(node, exp.Schema):
        node = node.this
    return node if isinstance(node, exp.Table) else None


def _constant(node: exp.Expr | None) -> bool:
    return node is not None and not any(
        isinstance(n, (exp.Column, exp.Query, exp.Subquery)) for n in node.walk()
    )


_INTEGERS = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
}


def _column_type(node: exp.Expr, columns: dict) -> str | None:
    """The DuckDB type of a bare column reference, or of integer arithmetic on one (PostgreSQL
    computes that itself), else None."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Column):
        return str(columns.get(node.name.lower(), "")).upper() or None
    if isinstance(node, exp.Neg):
        kind = _column_type(node.this, columns)
        return kind if kind in _INTEGERS else None
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Mod)):
        sides = [node.this, node.expression]
        kinds = [_column_type(s, columns) for s in sides]
        if any(k is not None for k in kinds) and all(
            k in _INTEGERS or (k is None and _constant(s))
            for k, s in zip(kinds, sides, strict=True)
        ):
            return next(k for k in kinds if k is not None)
    return None


def _is_text(kind: str) -> bool:
    return kind.startswith(("VARCHAR", "CHAR", "TEXT", "STRING"))


def _pushable(node: exp.Expr, columns: dict) -> bool:
    """Whether the PostgreSQL connector pushes a DELETE or UPDATE predicate down whole. Text
    columns take only equality, IN and IS NULL (their ordering is the database's collation)."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Boolean):
        return node.this is True
    if isinstance(node, exp.And):
        return _pushable(node.this, columns) and _pushable(node.expression, columns)
    if isinstance(node, exp.Or):
        terms = list(node.flatten())
        subjects = {_subject(t) for t in terms}
        return (
            len(subjects) == 1
            and None not in subjects
            and all(_pushable(t, columns) for t in terms)
        )
    if isinstance(node, exp.Not):
        inner = node.this.unnest() if isinstance(node.this, exp.Paren) else node.this
        kind = _column_type(_subject_node(inner) or exp.null(), columns)
        return kind is not None and not _is_text(kind) and _pushable(inner, columns)
    if isinstance(node, exp.Is):
        return _column_type(node.this, columns) is not None and isinstance(
            node.expression, exp.Null
        )
    subject = _subject_node(node)
    if subject is None:
        return False
    kind = _column_type(subject, columns)
    if kind is None:
        return False
    if _is_text(kind):
        return isinstance(node, (exp.EQ, exp.In))
    return True


def _subject_node(node: exp.Expr) -> exp.Expr | None:
    """The column side of a comparison with constants, or None."""
    if isinstance(
        node, (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE, exp.NullSafeEQ, exp.NullSafeNEQ)
    ):
        if _constant(node.expression) and not _constant(node.this):
            return node.this
        if _constant(node.this) and not _constant(node.expression):
            return node.expression
        return None
    if isinstance(node, exp.Between):
        bounds = [node.args.get("low"), node.args.get("high")]
        return node.this if all(_constant(b) for b in bounds) else None
    if isinstance(node, exp.In):
        if node.args.get("query") is not None or not node.expressions:
            return None
        return node.this if all(_constant(e) for e in node.expressions) else None
    if isinstance(node, exp.Is):
        return node.this
    return None


def _subject(node: exp.Expr) -> str | None:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Not):
        return _subject(node.this)
    subject = _subject_node(node)
    columns = (
        {c.name.lower() for c in subject.find_all(exp.Column)} if subject is not None else set()
    )
    return next(iter(columns)) if len(columns) == 1 else None
