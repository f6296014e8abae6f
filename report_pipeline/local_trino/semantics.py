"""Where Trino's types decide the answer, translated so DuckDB gives the same one, or refused.

Trino and DuckDB agree on most values but not on every type: Trino types a decimal literal by its
digits, keeps dates when adding intervals to them, bounds a string literal's varchar by its length,
follows a timestamp literal's precision. This pass infers the types of a statement's expressions
(sqlglot's annotator, with the catalogs' column types) and
- rewrites what has a faithful DuckDB form (decimal literals, date arithmetic, timestamp precision,
  the session's current_user/current_catalog/current_schema);
- records the varchar(n) bound of output columns built from string literals;
- refuses with NOT_SUPPORTED, naming it, what DuckDB would type differently (decimal division and
  rounding, zones other than UTC, year-month intervals, typeof, ipaddress).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify_columns import qualify_columns
from sqlglot.schema import MappingSchema

from report_pipeline.local_trino.errors import TrinoError

log = logging.getLogger(__name__)

T = exp.DataType.Type
_DECIMAL_FUNCTIONS = (exp.Round, exp.Avg, exp.Sign, exp.Mod, exp.Trunc)
_UTC = {"UTC", "Z", "+00:00", "ETC/UTC", "GMT", "UCT"}


def refuse(construct: str) -> TrinoError:
    return TrinoError("NOT_SUPPORTED", f"{construct} is not supported by the local engine")


def apply(tree: exp.Expr, schema: dict, session: Any) -> dict[int, str]:
    """Rewrite `tree` in place; return {output column index: Trino type} where DuckDB's type would
    not say it (varchar(n), timestamp(3) with time zone)."""
    _refuse_types(tree)
    _decimal_literals(tree)
    _integer_literals(tree)
    _annotate(tree, schema)
    _decimal_operations(tree)
    _integer_division(tree)
    _date_arithmetic(tree)
    output_types = _output_types(tree)
    output_types.update(_timestamp_precision(tree))
    return output_types


# --- refusals that need no types ------------------------------------------------------------------


def _refuse_types(tree: exp.Expr) -> None:
    outputs = _output_expressions(tree)
    for node in tree.walk():
        if isinstance(node, exp.Typeof) or (
            isinstance(node, exp.Anonymous) and node.name.lower() == "typeof"
        ):
            raise refuse("typeof() (DuckDB's types are not always Trino's)")
        if isinstance(node, exp.DataType) and node.this == T.IPADDRESS:
            raise refuse("The ipaddress type")
        if (
            isinstance(node, exp.Interval)
            and _is_year_month(node)
            and not (
                isinstance(node.parent, (exp.Add, exp.Sub))
                and not any(
                    isinstance(operand, exp.Interval)
                    for operand in (node.parent.this, node.parent.expression)
                    if operand is not node
                )
            )
        ):
            raise refuse("An interval year to month value (DuckDB has one interval type)")
        if isinstance(node, exp.Interval) and " TO " in _interval_unit(node):
            raise refuse(f"INTERVAL ... {_interval_unit(node)} (DuckDB reads single units)")
        if isinstance(node, exp.FromISO8601Timestamp):
            raise refuse("from_iso8601_timestamp() (values keep no zone but UTC)")
        if isinstance(node, exp.UnixToTime) and node.args.get("zone") is not None:
            raise refuse("from_unixtime() with a zone (values keep no zone but UTC)")
        if isinstance(node, exp.AtTimeZone):
            raise refuse("AT TIME ZONE")
        if isinstance(node, exp.DataType) and node.this in (T.CHAR, T.NCHAR):
            raise refuse("The char(n) type (DuckDB has no blank-padded strings)")
        if (
            isinstance(node, (exp.Array, exp.Map, exp.VarMap, exp.Struct, exp.Tuple))
            and _holds_string_literal(node)
            and id(node) in outputs
        ):
            raise refuse(
                f"{type(node).__name__.lower()} of string literals as a column "
                "(Trino types them varchar(n))"
            )
        if (
            isinstance(node, exp.Cast)
            and node.to.this in (T.TIMESTAMPTZ, T.TIMETZ)
            and _zoned_literal(node)
        ):
            zone = _literal_zone(node.this.name)
            # DuckDB's time with time zone keeps an offset; its timestamp with time zone keeps none
            keeps_offset = node.to.this == T.TIMETZ and zone is not None and zone[0] in "+-"
            if zone is not None and zone.upper() not in _UTC and not keeps_offset:
                raise refuse(
                    f"A {node.to.sql('trino')} literal in zone {zone} (values keep no zone but UTC)"
                )


def _holds_string_literal(node: exp.Expr) -> bool:
    if isinstance(node.parent, exp.Cast) or (
        isinstance(node, exp.Tuple) and not isinstance(node.parent, exp.Select)
    ):
        # a CAST names the type; a tuple outside the select list is an IN list or VALUES row
        return False
    return any(
        isinstance(child, exp.Literal) and child.is_string for child in node.iter_expressions()
    ) or any(
        isinstance(child, (exp.Array, exp.Map, exp.VarMap)) and _holds_string_literal(child)
        for child in node.iter_expressions()
    )


def _interval_unit(node: exp.Interval) -> str:
    """The interval's unit as Trino spells it (`DAY`, `HOUR TO SECOND`), upper-case; "" if none."""
    unit = node.args.get("unit")
    return unit.sql("trino").upper() if unit is not None else ""


def _is_year_month(node: exp.Interval) -> bool:
    text = _interval_unit(node)
    return "YEAR" in text or "MONTH" in text


def _zoned_literal(node: exp.Cast) -> bool:
    return isinstance(node.this, exp.Literal) and node.this.is_string


def _literal_zone(text: str) -> str | None:
    """The zone of a Trino timestamp/time literal ('2026-01-01 10:00:00 Europe/Paris'), if it
    names one."""
    parts = text.strip().split()
    if len(parts) >= 2 and not parts[-1][0].isdigit():
        return parts[-1]
    last = parts[-1] if parts else ""
    for sign in ("+", "-"):
        head, found, offset = last.rpartition(sign)
        if found and ":" in offset and (":" in head or len(parts) > 1):
            return sign + offset
    return None


# String functions whose result Trino bounds by their argument's varchar(n) (by rules of their own).
_BOUNDED_BY_ARGUMENT = (
    exp.Reverse,
    exp.Chr,
    exp.Replace,
    exp.RegexpReplace,
    exp.RegexpExtract,
    exp.RegexpExtractAll,
    exp.Split,
    exp.RegexpSplit,
    exp.JSONExtractScalar,
    exp.Repeat,
)


def canonical_json(tree: exp.Expr) -> None:
    """Trino keeps a JSON value canonical: object keys sorted, no spaces. A literal is canonicalized
    here; parsing JSON text from a column is refused, DuckDB would keep its key order."""
    for node in list(tree.walk()):
        if not isinstance(node, exp.ParseJSON):
            continue
        if not (isinstance(node.this, exp.Literal) and node.this.is_string):
            raise refuse("json_parse() of a non-literal (Trino sorts object keys)")
        try:
            value = json.loads(node.this.name)
        except ValueError:
            continue  # invalid JSON fails in DuckDB as in Trino
        node.this.replace(
            exp.Literal.string(
                json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            )
        )


def refuse_literal_string_columns(tree: exp.Expr) -> None:
    """An output column computed by one of these functions from a string literal has a varchar(n)
    type in Trino that the engine does not compute: refused (from a column, the type is
    unbounded)."""
    for expression in _select_list(tree):
        inner = expression.unalias()
        if isinstance(inner, _BOUNDED_BY_ARGUMENT) and _bound(inner.this) is not None:
            name = inner.sql(dialect="trino").split("(")[0].lower()
            raise refuse(f"`{name}()` of a string literal as an output column (its varchar(n))")


def _select_list(tree: exp.Expr) -> list[exp.Expr]:
    """The output columns' expressions (aliases included) of a query; none for CREATE or INSERT."""
    select = tree
    while isinstance(select, exp.SetOperation):
        select = select.this
    if not isinstance(select, exp.Select) or isinstance(tree, (exp.Create, exp.Insert)):
        return []
    return list(select.expressions)


# --- the session ----------------------------------------------------------------------------------


def session_functions(tree: exp.Expr, session: Any) -> None:
    """current_user, current_catalog and current_schema are the session's (DuckDB would name its
    own)."""
    values = {
        exp.CurrentUser: session.user,
        exp.CurrentSchema: session.schema,
        exp.CurrentCatalog: session.catalog,
    }
    for node in list(tree.walk()):
        if (
            isinstance(node, exp.Column)
            and not node.table
            and not node.this.quoted
            and node.name.lower() == "current_schema"
        ):
            node = node.replace(exp.CurrentSchema())  # Trino's keyword, parsed as a column name
        for node_type, value in values.items():
            if isinstance(node, node_type):
                node.replace(
                    exp.cast(
                        exp.Literal.string(value) if value is not None else exp.null(), T.VARCHAR
                    )
                )


# --- decimals -------------------------------------------------------------------------------------


def _decimal_literals(tree: exp.Expr) -> None:
    """Trino types `2.50` as decimal(3,2) (precision: its digits, at least its scale); DuckDB's
    literal typing differs for leading zeros and fails beyond 18 digits."""
    for node in list(tree.walk()):
        if (
            isinstance(node, exp.Cast)
            and node.to.this == T.DECIMAL
            and not node.to.expressions
            and isinstance(node.this, exp.Literal)
            and node.this.is_string
        ):
            node.replace(_decimal_literal(node.this.name.strip()))  # DECIMAL '1.50'
            continue
        if isinstance(node, exp.Literal) and not node.is_string and _is_decimal_text(node.name):
            if isinstance(node.parent, exp.Cast):
                continue
            whole, _, fraction = node.name.partition(".")
            precision = max(len(whole.lstrip("0")) + len(fraction), 1)
            if precision > 38:
                raise refuse(f"The decimal literal {node.name} (over 38 digits)")
            node.replace(
                exp.cast(node.copy(), exp.DataType.build(f"DECIMAL({precision}, {len(fraction)})"))
            )


def _integer_literals(tree: exp.Expr) -> None:
    """Trino types an integer literal `integer` (`bigint` beyond 32 bits) also in arithmetic, where
    DuckDB would shrink it to the other operand's type (smallint * 3 is an integer in Trino)."""
    for node in list(tree.walk()):
        if (
            isinstance(node, exp.Literal)
            and not node.is_string
            and node.name.isdigit()
            and isinstance(node.parent, (exp.Add, exp.Sub, exp.Mul, exp.Mod))
        ):
            node.replace(exp.cast(node.copy(), T.INT if int(node.name) < 2**31 else T.BIGINT))


def _is_decimal_text(text: str) -> bool:
    return "." in text and "e" not in text.lower()


def _decimal_literal(text: str) -> exp.Expr:
    sign = "-" if text.startswith("-") else ""
    whole, _, fraction = text.lstrip("+-").partition(".")
    precision = max(len(whole.lstrip("0")) + len(fraction), 1)
    if precision > 38:
        raise refuse(f"The decimal literal {text} (over 38 digits)")
    return exp.cast(
        exp.Literal.string(sign + (whole or "0") + ("." + fraction if fraction else "")),
        exp.DataType.build(f"DECIMAL({precision}, {len(fraction)})"),
    )


def _is_decimal(node: exp.Expr) -> bool:
    node_type = getattr(node, "type", None)
    return node_type is not None and node_type.this in (T.DECIMAL, T.BIGDECIMAL)


def _decimal_operations(tree: exp.Expr) -> None:
    """Decimal division, avg, round, mod and sign follow Trino's precision and rounding rules, which
    DuckDB's (a double, or other scales) do not: refused rather than answered differently."""
    for node in tree.walk():
        if isinstance(node, (exp.Div, exp.IntDiv)) and (
            _is_decimal(node.this) or _is_decimal(node.expression)
        ):
            raise refuse("Division with a decimal operand (Trino's result is a rounded decimal)")
        if isinstance(node, _DECIMAL_FUNCTIONS) and _is_decimal(node.this):
            raise refuse(f"{type(node).__name__.lower()}() of a decimal")
        if (
            isinstance(node, exp.Anonymous)
            and node.name.lower() in ("truncate", "sign")
            and node.expressions
            and _is_decimal(node.expressions[0])
        ):
            raise refuse(f"{node.name.lower()}() of a decimal")


_INTEGER_WIDTHS = [T.TINYINT, T.SMALLINT, T.INT, T.BIGINT]


def _integer_division(tree: exp.Expr) -> None:
    """Trino's integer division keeps the wider operand's type; DuckDB's translation makes it a
    bigint."""
    for node in list(tree.walk()):
        if not isinstance(node, exp.Div) or isinstance(node.parent, exp.Cast):
            continue
        types = [getattr(operand, "type", None) for operand in (node.this, node.expression)]
        widths = [t.this for t in types if t is not None and t.this in _INTEGER_WIDTHS]
        if len(widths) == 2:
            wider = max(widths, key=_INTEGER_WIDTHS.index)
            if wider != T.BIGINT:
                replacement = exp.cast(node.copy(), wider)
                replacement.type = exp.DataType.build(wider)
                node.replace(replacement)


# --- dates and timestamps -------------------------------------------------------------------------


def _date_arithmetic(tree: exp.Expr) -> None:
    """A date plus or minus days, months or years stays a date in Trino; DuckDB makes it a
    timestamp."""
    for node in list(tree.walk()):
        if isinstance(node, (exp.DateAdd, exp.DateSub, exp.DateTrunc, exp.TimestampTrunc)):
            if isinstance(node, exp.DateTrunc) and not _is_date(node.this):
                continue
            if _is_date(node.this):
                _cast_result(node, T.DATE)
        elif isinstance(node, exp.StrToTime) and not isinstance(node.parent, exp.Cast):
            # date_parse
            node.replace(
                exp.cast(node.copy(), exp.DataType.build("TIMESTAMP_MS", dialect="duckdb"))
            )
        elif isinstance(node, (exp.Add, exp.Sub)):
            left, right = node.this, node.expression
            if isinstance(node, exp.Sub) and _is_date(left) and _is_date(right):
                raise refuse("Date minus date (an interval day to second in Trino)")
            if (_is_date(left) and isinstance(right, exp.Interval)) or (
                _is_date(right) and isinstance(left, exp.Interval)
            ):
                _cast_result(node, T.DATE)


def _is_date(node: exp.Expr | None) -> bool:
    node_type = getattr(node, "type", None)
    return node_type is not None and node_type.this == T.DATE


def _cast_result(node: exp.Expr, to: exp.DType) -> None:
    if isinstance(node.parent, exp.Cast):
        return
    replacement = exp.cast(node.copy(), to)
    replacement.type = exp.DataType.build(to)
    node.replace(replacement)


# DuckDB's timestamp types by the fractional digits Trino's timestamp(p) keeps
_TIMESTAMP_TYPES = {
    0: "TIMESTAMP_S",
    3: "TIMESTAMP_MS",
    6: "TIMESTAMP",
}  # nanoseconds do not reach Python


_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Between, exp.In)


def _timestamp_precision(tree: exp.Expr) -> dict[int, str]:
    """Trino's `timestamp` is timestamp(3), a literal's precision is its digits; DuckDB has seconds,
    milliseconds and microseconds for timestamps, microseconds for times and zoned timestamps. Where
    DuckDB has no type of that precision, the value is the same: an output column gets Trino's type
    (returned: {column index: type}), a comparison needs none, anything else is refused."""
    outputs = _output_expressions(tree)
    overrides: dict[int, str] = {}
    for node in list(tree.walk()):
        if not isinstance(node, exp.Cast) or node.meta.get("engine_typed"):
            continue
        target = node.to
        if target.this not in (T.TIMESTAMP, T.DATETIME, T.TIMESTAMPTZ, T.TIME, T.TIMETZ):
            continue
        # the parser gives a literal its digits as precision; a bare `timestamp` is timestamp(3)
        precision = _precision(target)
        precision = 3 if precision is None else precision
        plain = target.this in (T.TIMESTAMP, T.DATETIME)
        if plain and precision in _TIMESTAMP_TYPES:
            duck_type = _TIMESTAMP_TYPES[precision]
            node.set("to", exp.DataType.build(duck_type, dialect="duckdb"))
            _keep_precision(node, precision)
            continue
        name = {
            T.TIMESTAMPTZ: "timestamp({}) with time zone",
            T.TIME: "time({})",
            T.TIMETZ: "time({}) with time zone",
        }.get(target.this, "timestamp({})").format(precision)
        if precision == 6:
            continue
        if precision > 6:
            raise refuse(f"{name} (DuckDB keeps microseconds)")
        if id(node) in outputs:
            overrides[outputs[id(node)]] = name
        elif not isinstance(node.parent, _COMPARISONS):
            raise refuse(f"{name} inside an expression (DuckDB keeps 6 fractional digits)")
        if plain:
            node.set("to", exp.DataType.build("TIMESTAMP", dialect="duckdb"))
    return overrides


def _output_expressions(tree: exp.Expr) -> dict[int, int]:
    """id() of each output column's expression (under its alias) -> the column's index."""
    return {id(expression.unalias()): index for index, expression in enumerate(_select_list(tree))}


def _keep_precision(node: exp.Cast, precision: int) -> None:
    """Trino's date_add keeps a timestamp's precision; adding an interval gives at least
    milliseconds. DuckDB's result always has microseconds."""
    parent = node.parent
    if precision == 6 or isinstance(parent.parent if parent else None, exp.Cast):
        return
    if isinstance(parent, (exp.DateAdd, exp.DateSub)):
        result = precision
    elif isinstance(parent, (exp.Add, exp.Sub)) and any(
        isinstance(operand, exp.Interval) for operand in (parent.this, parent.expression)
    ):
        interval = next(o for o in (parent.this, parent.expression) if isinstance(o, exp.Interval))
        # day-to-second has milliseconds
        result = precision if _is_year_month(interval) else max(precision, 3)
    else:
        return
    parent.replace(
        exp.cast(parent.copy(), exp.DataType.build(_TIMESTAMP_TYPES[result], dialect="duckdb"))
    )


def _precision(data_type: exp.DataType) -> int | None:
    if not data_type.expressions:
        return None
    size = data_type.expressions[0]
    value = size.this if isinstance(size, exp.DataTypeParam) else size
    return int(value.name if isinstance(value, exp.Expr) else value)


# --- bounded varchar ------------------------------------------------------------------------------

# functions whose result is timestamp(3) with time zone in Trino (DuckDB's has microseconds)
_MILLISECOND_ZONED = (exp.CurrentTimestamp, exp.UnixToTime)
_MILLISECOND_ZONED_NAMES = {"from_iso8601_timestamp", "now"}


def _output_types(tree: exp.Expr) -> dict[int, str]:
    """Output columns whose Trino type DuckDB's cannot say: string-literal expressions keep their
    varchar(n) bound through CASE, COALESCE, upper() and ||; now() and from_unixtime() have
    milliseconds."""
    if isinstance(tree, exp.Create):
        return {}
    select = tree
    while isinstance(select, exp.SetOperation):
        select = select.this
    if not isinstance(select, exp.Select):
        return {}
    types = {}
    values_bounds = _values_bounds(select)
    for index, expression in enumerate(select.expressions):
        inner = expression.unalias()
        bound = _bound(inner)
        if bound is None and isinstance(inner, exp.Column):
            bound = values_bounds.get((inner.table.lower(), inner.name.lower())) or (
                values_bounds.get(("", inner.name.lower())) if not inner.table else None
            )
        if bound is not None:
            types[index] = f"varchar({bound})"
        elif isinstance(inner, _MILLISECOND_ZONED) or (
            isinstance(inner, exp.Anonymous) and inner.name.lower() in _MILLISECOND_ZONED_NAMES
        ):
            types[index] = "timestamp(3) with time zone"
    return types


def declared_types(tree: exp.Expr) -> dict[str, str]:
    """The varchar(n) columns a CREATE TABLE (or CTAS) gives its table, by column name: DuckDB keeps
    no bound, so the engine records them (catalogs.Catalogs.declare)."""
    if not isinstance(tree, exp.Create) or (tree.args.get("kind") or "TABLE").upper() != "TABLE":
        return {}
    declared = {}
    if isinstance(tree.this, exp.Schema):
        for column in tree.this.expressions:
            if isinstance(column, exp.ColumnDef):
                declared_type = bounded_varchar(column.args.get("kind"))
                if declared_type is not None:
                    declared[column.name.lower()] = declared_type
    select = tree.expression
    while isinstance(select, (exp.SetOperation, exp.Subquery)):
        select = select.this
    if isinstance(select, exp.Select):
        values_bounds = _values_bounds(select)
        for expression in select.expressions:
            inner = expression.unalias()
            bound = _bound(inner)
            if bound is None and isinstance(inner, exp.Column):
                bound = values_bounds.get((inner.table.lower(), inner.name.lower()))
            if bound is not None:
                declared[expression.alias_or_name.lower()] = f"varchar({bound})"
    return declared


def bounded_varchar(data_type: exp.Expr | None) -> str | None:
    """`varchar(n)` for a varchar type with a length, else None."""
    if (
        isinstance(data_type, exp.DataType)
        and data_type.this == T.VARCHAR
        and data_type.expressions
    ):
        return f"varchar({_precision(data_type)})"
    return None


def _values_bounds(select: exp.Select) -> dict[tuple[str, str], int]:
    """(alias, column) -> varchar(n) of the VALUES in FROM whose column holds only string literals
    (and NULLs): Trino types such a column by its longest string."""
    bounds: dict[tuple[str, str], int] = {}
    for values in select.find_all(exp.Values):
        alias = values.args.get("alias")
        if alias is None or values.find_ancestor(exp.Select) is not select:
            continue
        columns = [c.name.lower() for c in alias.columns]
        rows = [
            row.expressions if isinstance(row, exp.Tuple) else [row] for row in values.expressions
        ]
        for position, column in enumerate(columns):
            cells = [row[position] for row in rows if position < len(row)]
            strings = [c for c in cells if isinstance(c, exp.Literal) and c.is_string]
            if strings and all(isinstance(c, exp.Null) or c in strings for c in cells):
                bound = max(len(c.name) for c in strings)
                bounds[(alias.name.lower(), column)] = bound
                bounds[("", column)] = bound
    return bounds


class _Unbounded(Exception):
    pass


def _bound(node: exp.Expr) -> int | None:
    """The varchar(n) bound of an expression made of string literals, None if it is not one."""
    try:
        return _length(node)
    except _Unbounded:
        return None


def _length(node: exp.Expr) -> int:
    if isinstance(node, exp.Literal) and node.is_string:
        return len(node.name)
    if isinstance(node, exp.Paren):
        return _length(node.this)
    if isinstance(node, (exp.Upper, exp.Lower, exp.Trim)):
        return _length(node.this)
    if isinstance(node, exp.Cast) and node.to.this == T.VARCHAR:
        length = _precision(node.to)  # CAST(x AS varchar(n)); None: an unbounded varchar
        if length is not None:
            return length
    if isinstance(node, exp.Substring):
        return _length(node.this)
    # element_at(ARRAY['a', ...], i)
    if isinstance(node, exp.Bracket) and isinstance(node.this, exp.Array):
        return max(_length(element) for element in node.this.expressions)
    if isinstance(node, (exp.Greatest, exp.Least)):
        return max(_length(argument) for argument in [node.this, *node.expressions])
    if isinstance(node, (exp.Case, exp.If, exp.Coalesce)):
        branches = [b for b in _branches(node) if not isinstance(b, exp.Null)]
        if not branches:
            raise _Unbounded()
        return max(_length(b) for b in branches)
    raise _Unbounded()


def _branches(node: exp.Expr) -> list[exp.Expr]:
    if isinstance(node, exp.Case):
        return [i.args["true"] for i in node.args.get("ifs") or []] + [
            node.args.get("default") or exp.null()
        ]
    if isinstance(node, exp.If):
        return [node.args["true"], node.args.get("false") or exp.null()]
    return [node.this, *node.expressions]


# --- types ----------------------------------------------------------------------------------------


def _annotate(tree: exp.Expr, schema: dict) -> None:
    """Give every node of `tree` its inferred type (`node.type`), from a copy with qualified columns
    (qualification would change the statement itself); where inference fails, types stay unknown."""
    for index, node in enumerate(tree.walk()):
        node.meta["node"] = index
    copy = tree.copy()
    try:
        mapping = MappingSchema(schema, dialect="duckdb")
        qualify_columns(copy, mapping, expand_stars=False)
        annotate_types(copy, schema=mapping, dialect="trino")
    except Exception as error:
        log.debug("no types inferred: %s", error)
        return
    inferred = {
        node.meta.get("node"): node.type
        for node in copy.walk()
        if node.meta.get("node") is not None
    }
    for node in tree.walk():
        node_type = inferred.get(node.meta.get("node"))
        if node_type is not None and node_type.this != T.UNKNOWN:
            node.type = node_type
