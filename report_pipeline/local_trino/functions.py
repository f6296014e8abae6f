"""Trino functions whose DuckDB namesake answers differently, rewritten to DuckDB expressions that
answer as Trino does (or refused with NOT_SUPPORTED where no faithful translation exists).

Two passes over a parsed statement:
- `rewrite_tree` before types are inferred: what the call's shape alone decides;
- `rewrite_typed` after `semantics` gave nodes their inferred types (`node.type`): what depends on
  the argument's type (a double, a real, an array rather than a map).
Both rewrite children before their parent, so nested calls are all translated exactly once.
Where Trino fails at run time (an index out of range, say), the DuckDB expression calls DuckDB's
`error()` with the Trino error name in a marker `errors.from_duckdb` recognises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlglot import exp

from report_pipeline.local_trino.errors import TrinoError, raised_marker

T = exp.DataType.Type

# Calls sqlglot keeps as exp.Anonymous that this module answers itself: the function-name check
# must let them through (Trino parses JSON_EXISTS/JSON_ARRAY as syntax, and fail() is hidden).
ANONYMOUS = frozenset({"fail", "json_exists", "json_array", "json_object", "millisecond"})


def refuse(construct: str) -> TrinoError:
    return TrinoError("NOT_SUPPORTED", f"{construct} is not supported by the local engine")


# --- helpers --------------------------------------------------------------------------------------


def _fn(name: str, *args: exp.Expr) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def _fail(name: str, message: exp.Expr | str) -> exp.Expr:
    """A DuckDB expression that fails the query with Trino's error `name` when evaluated."""
    text = exp.Literal.string(message) if isinstance(message, str) else message
    return _fn("error", exp.DPipe(this=exp.Literal.string(raised_marker(name)), expression=text))


def _float_divide(a: exp.Expr, b: exp.Expr) -> exp.Expr:
    """IEEE division of doubles: the engine sets DuckDB's integer_division (Trino's 5 / 2 = 2),
    which turns the `/` operator into `//`, an error on zero; the "/" function stays IEEE."""
    return exp.Anonymous(
        this=exp.to_identifier("/", quoted=True),
        expressions=[exp.cast(a, T.DOUBLE), exp.cast(b, T.DOUBLE)],
    )


def _when(*pairs: tuple[exp.Expr, exp.Expr], default: exp.Expr | None = None) -> exp.Case:
    case = exp.Case()
    for condition, value in pairs:
        case = case.when(condition, value)
    return case.else_(default) if default is not None else case


def _int(value: int) -> exp.Expr:
    return exp.Literal.number(value) if value >= 0 else exp.Neg(this=exp.Literal.number(-value))


def _c(node: exp.Expr) -> exp.Expr:
    return node.copy()


def _literal_int(node: exp.Expr | None) -> int | None:
    """The value of an integer literal (or its negation), None for anything else."""
    if isinstance(node, exp.Neg):
        value = _literal_int(node.this)
        return -value if value is not None else None
    if isinstance(node, exp.Literal) and not node.is_string and node.name.lstrip("-").isdigit():
        return int(node.name)
    return None


def _lambda(body: Callable[[exp.Expr], exp.Expr]) -> exp.Expr:
    # DuckDB 2.0 wants `lambda x: body`; sqlglot writes the arrow form, so spell it out
    var = exp.to_identifier("__x")
    return exp.Lambda(this=body(exp.column("__x")), expressions=[var])


# --- the untyped pass -----------------------------------------------------------------------------


def rewrite_tree(tree: exp.Expr, session: Any = None) -> exp.Expr:
    """Rewrite every call whose translation its shape decides, children first."""
    return _post_order(tree, lambda node: rewrite(node, session))


def _post_order(tree: exp.Expr, fun: Callable[[exp.Expr], exp.Expr]) -> exp.Expr:
    nodes = list(tree.walk(bfs=False))
    for node in reversed(nodes):  # reversed pre-order: every node after its descendants
        new = fun(node)
        if new is not node:
            if node is tree:
                tree = new
            else:
                node.replace(new)
    return tree


def rewrite(node: exp.Expr, session: Any = None) -> exp.Expr:
    if isinstance(node, exp.CurrentTimezone):
        # the session's zone, as the client set it (the engine sets DuckDB's TimeZone from it too)
        zone = getattr(session, "time_zone", None) or "UTC"
        return exp.cast(exp.Literal.string(zone), T.VARCHAR)
    handler = _HANDLERS.get(type(node))
    if handler is None and isinstance(node, exp.Anonymous):
        handler = _ANONYMOUS_HANDLERS.get(node.name.lower())
    return handler(node) if handler is not None else node


def _millisecond(node: exp.Anonymous) -> exp.Expr:
    # DuckDB's millisecond() counts the seconds too (15678 for 15.678s); Trino's is the fraction
    if len(node.expressions) != 1:
        return node
    return exp.Mod(this=_c(node), expression=exp.Literal.number(1000))


def _fail_call(node: exp.Anonymous) -> exp.Expr:
    # fail(message) raises GENERIC_USER_ERROR with that message
    if len(node.expressions) != 1:
        raise TrinoError("FUNCTION_NOT_FOUND", "Function 'fail' not registered")
    return _fail("GENERIC_USER_ERROR", exp.cast(_c(node.expressions[0]), T.VARCHAR))


def _refuse_call(node: exp.Func) -> exp.Expr:
    name = node.name.lower() if isinstance(node, exp.Anonymous) else node.sql_name().lower()
    raise refuse(f"Function {_TRINO_NAMES.get(name, name)}")


# Trino's name for exp classes sqlglot maps Trino calls to, where DuckDB lacks the function
_TRINO_NAMES = {
    "str_to_map": "split_to_map",
    "from_base": "from_base",
    "json_object": "json_object",
    "jsonobject": "json_object",
    "jsonarraycontains": "json_array_contains",
    "json_array_contains": "json_array_contains",
    "width_bucket": "width_bucket",
    "normalize": "normalize",
    "parse_datetime": "parse_datetime",
    "parsedatetime": "parse_datetime",
}


_EXTRACT_FIELDS = {
    # Trino's day_of_week/dow is ISO (Monday 1 .. Sunday 7); DuckDB's dow counts from Sunday 0
    "DAY_OF_WEEK": "ISODOW",
    "DOW": "ISODOW",
    "DAY_OF_MONTH": "DAY",
    "DAY_OF_YEAR": "DOY",
    "YEAR_OF_WEEK": "ISOYEAR",
    "YOW": "ISOYEAR",
}


def _extract(node: exp.Extract) -> exp.Expr:
    field = node.this.name.upper() if isinstance(node.this, (exp.Var, exp.Identifier)) else ""
    if field in _EXTRACT_FIELDS:
        return exp.Extract(this=exp.var(_EXTRACT_FIELDS[field]), expression=_c(node.expression))
    return node


def _bitwise(node: exp.Expr) -> exp.Expr:
    # Trino's bitwise_* functions take and return bigint
    new = node.copy()
    for key in ("this", "expression"):
        if new.args.get(key) is not None:
            new.set(key, exp.cast(new.args[key], T.BIGINT))
    return new


def _grouping(node: exp.Grouping) -> exp.Expr:
    return exp.cast(_c(node), T.INT)  # Trino's grouping() is an integer


def _substring(node: exp.Substring) -> exp.Expr:
    # Trino: start 0 gives '', a start before the string's beginning gives '' and a negative
    # length gives ''; DuckDB counts such positions from the start instead.
    value, start, length = node.this, node.args.get("start"), node.args.get("length")
    if start is None:
        return node
    literal_start, literal_length = _literal_int(start), _literal_int(length)
    if (
        literal_start is not None
        and literal_start > 0
        and (length is None or (literal_length or 0) >= 0)
        and (length is None or literal_length is not None)
    ):
        return node
    empty = exp.Literal.string("")
    conditions = [
        exp.EQ(this=_c(start), expression=exp.Literal.number(0)),
        exp.LT(this=_c(start), expression=exp.Neg(this=_fn("length", _c(value)))),
    ]
    if length is not None:
        conditions.append(exp.LT(this=_c(length), expression=exp.Literal.number(0)))
    return _when(*[(c, empty) for c in conditions], default=_c(node))


def _split(node: exp.Split) -> exp.Expr:
    limit = node.args.get("limit")
    if limit is None:
        return node
    value, delimiter = node.this, node.expression
    parts = exp.Split(this=_c(value), expression=_c(delimiter))
    # the first limit-1 parts, then the rest of the string unsplit
    head = _fn(
        "list_slice",
        parts.copy(),
        exp.Literal.number(1),
        exp.Sub(this=_c(limit), expression=exp.Literal.number(1)),
    )
    tail = _fn(
        "array_to_string",
        _fn("list_slice", parts.copy(), _c(limit), _fn("len", parts.copy())),
        _c(delimiter),
    )
    return _when(
        (
            exp.LTE(this=_c(limit), expression=exp.Literal.number(0)),
            _fail("INVALID_FUNCTION_ARGUMENT", "Limit must be positive"),
        ),
        (exp.LTE(this=_fn("len", parts.copy()), expression=_c(limit)), parts.copy()),
        default=_fn("list_concat", head, exp.Array(expressions=[tail])),
    )


def _split_part(node: exp.SplitPart) -> exp.Expr:
    value, delimiter, index = node.this, node.args.get("delimiter"), node.args.get("part_index")
    if delimiter is None or index is None:
        return node
    parts = exp.Split(this=_c(value), expression=_c(delimiter))
    # index 0 (or below) is an error in Trino, one past the last part is NULL (DuckDB: '')
    return _when(
        (
            exp.LTE(this=_c(index), expression=exp.Literal.number(0)),
            _fail("INVALID_FUNCTION_ARGUMENT", "Index must be greater than zero"),
        ),
        (exp.GT(this=_c(index), expression=_fn("len", parts)), exp.null()),
        default=_c(node),
    )


def _regexp_extract(node: exp.RegexpExtract) -> exp.Expr:
    # no match: NULL in Trino, '' in DuckDB
    matches = exp.RegexpLike(this=_c(node.this), expression=_c(node.expression))
    return _when((matches, _c(node)), default=exp.null())


def _regexp_replace(node: exp.RegexpReplace) -> exp.Expr:
    replacement = node.args.get("replacement")
    if replacement is None:
        return node
    if not (isinstance(replacement, exp.Literal) and replacement.is_string):
        # Java's $n / \x replacement syntax cannot be translated at run time
        raise refuse("regexp_replace() with a replacement that is not a literal")
    new = node.copy()
    new.set("replacement", exp.Literal.string(_java_replacement(replacement.name)))
    return new


def _java_replacement(text: str) -> str:
    """Java's replacement syntax ($n for a group, \\x for a literal x) in RE2's (\\n, \\\\)."""
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 >= len(text):
                raise TrinoError(
                    "INVALID_FUNCTION_ARGUMENT",
                    "Illegal replacement sequence: character to be escaped is missing",
                )
            literal = text[i + 1]
            out.append("\\\\" if literal == "\\" else literal)
            i += 2
        elif char == "$":
            j = i + 1
            while j < len(text) and text[j].isdigit():
                j += 1
            if j == i + 1:
                raise refuse("regexp_replace() with a named group reference")
            if j - i - 1 > 1:
                raise refuse("regexp_replace() with a group reference above 9")
            out.append("\\" + text[i + 1 : j])
            i = j
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _sha1(node: exp.SHA) -> exp.Expr:
    # DuckDB's sha1() is hex text, Trino's a varbinary digest
    return exp.Unhex(this=_fn("sha1", _c(node.this)))


def _sha2(node: exp.SHA2Digest) -> exp.Expr:
    length = _literal_int(node.args.get("length"))
    if length == 256:
        return exp.Unhex(this=_fn("sha256", _c(node.this)))
    raise refuse(f"Function sha{length or ''}")  # DuckDB has no sha512


def _repeat(node: exp.Repeat) -> exp.Expr:
    # Trino's repeat(element, count) is an array of count elements
    times = node.args["times"]  # required: the parser always sets it
    return _when(
        (
            exp.LT(this=_c(times), expression=exp.Literal.number(0)),
            _fail(
                "INVALID_FUNCTION_ARGUMENT",
                "count argument of repeat function must be greater than or equal to 0",
            ),
        ),
        (
            exp.GT(this=_c(times), expression=exp.Literal.number(10000)),
            _fail(
                "INVALID_FUNCTION_ARGUMENT",
                "count argument of repeat function must be less than or equal to 10000",
            ),
        ),
        default=_fn("repeat", exp.Array(expressions=[_c(node.this)]), _c(times)),
    )


def _upper(node: exp.Upper) -> exp.Expr:
    # Trino upper-cases code point by code point and keeps ß (it has no one-letter capital);
    # DuckDB makes it ẞ. Upper-case the pieces between the ß.
    pieces = exp.Split(this=_c(node.this), expression=exp.Literal.string("ß"))
    upper = _fn("list_transform", pieces, _lambda(lambda x: exp.Upper(this=x)))
    return _fn("array_to_string", upper, exp.Literal.string("ß"))


def _format(node: exp.Format) -> exp.Expr:
    # Java's Formatter: only %s of strings/integers, %d and %% render as C's printf does
    fmt = node.this
    if not (isinstance(fmt, exp.Literal) and fmt.is_string):
        raise refuse("format() with a format that is not a literal")
    text, i = fmt.name, 0
    while i < len(text):
        if text[i] == "%":
            spec = text[i + 1 : i + 2]
            if spec not in ("s", "d", "%"):
                raise refuse("format() with conversions other than %s, %d and %%")
            i += 2
        else:
            i += 1
    return _fn("printf", _c(fmt), *[_c(e) for e in node.expressions])


def _sequence(node: exp.GenerateSeries) -> exp.Expr:
    if isinstance(node.parent, exp.Anonymous) and node.parent.name.upper() == "TABLE":
        return node
    start, end, step = (node.args.get(k) for k in ("start", "end", "step"))
    if step is None and start is not None and end is not None:
        # Trino counts down when start > stop; DuckDB answers an empty list
        step = _when((exp.GT(this=_c(start), expression=_c(end)), _int(-1)), default=_int(1))
        node = exp.GenerateSeries(start=_c(start), end=_c(end), step=step)
    series = node.copy()
    return _when(
        (
            exp.GT(this=_fn("len", series), expression=exp.Literal.number(10000)),
            _fail(
                "INVALID_FUNCTION_ARGUMENT",
                "result of sequence function must not have more than 10000 entries",
            ),
        ),
        default=node.copy(),
    )


_DATE_UNITS = {"MILLISECOND", "SECOND", "MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "QUARTER", "YEAR"}


def _date_unit(node: exp.Expr) -> exp.Expr:
    unit = node.args.get("unit")
    if isinstance(unit, (exp.Var, exp.Literal)) and unit.name.upper() not in _DATE_UNITS:
        raise TrinoError(
            "INVALID_FUNCTION_ARGUMENT", f"'{unit.name.lower()}' is not a valid DATE field"
        )
    return node


def _pad(node: exp.Pad) -> exp.Expr:
    size = node.expression
    fill = node.args.get("fill_pattern")
    checks: list[tuple[exp.Expr, exp.Expr]] = [
        (
            exp.LT(this=_c(size), expression=exp.Literal.number(0)),
            _fail(
                "INVALID_FUNCTION_ARGUMENT", "Target length must be in the range [0..2147483647]"
            ),
        )
    ]
    if fill is not None:
        checks.append(
            (
                exp.EQ(this=_c(fill), expression=exp.Literal.string("")),
                _fail("INVALID_FUNCTION_ARGUMENT", "Padding string must not be empty"),
            )
        )
    return _when(*checks, default=_c(node))


_ISO_DATE = r"^\d{4}(-\d{2}(-\d{2})?)?$"


def _from_iso8601_date(node: exp.FromISO8601Date) -> exp.Expr:
    # DuckDB's date cast accepts other separators; Trino only ISO 8601 (week and ordinal dates too,
    # which DuckDB cannot parse: refused rather than answered differently)
    value = _c(node.this)
    well_formed = exp.RegexpLike(this=value.copy(), expression=exp.Literal.string(_ISO_DATE))
    padded = _when(
        (
            exp.RegexpLike(this=value.copy(), expression=exp.Literal.string(r"^\d{4}$")),
            exp.DPipe(this=value.copy(), expression=exp.Literal.string("-01-01")),
        ),
        (
            exp.RegexpLike(this=value.copy(), expression=exp.Literal.string(r"^\d{4}-\d{2}$")),
            exp.DPipe(this=value.copy(), expression=exp.Literal.string("-01")),
        ),
        default=value.copy(),
    )
    week_or_ordinal = exp.RegexpLike(
        this=value.copy(), expression=exp.Literal.string(r"^\d{4}-(W\d{2}(-\d)?|\d{3})$")
    )
    return _when(
        (
            week_or_ordinal,
            _fail(
                "NOT_SUPPORTED",
                "from_iso8601_date() of a week or ordinal date is not supported by the local "
                "engine",
            ),
        ),
        (
            exp.Not(this=well_formed),
            _fail(
                "INVALID_FUNCTION_ARGUMENT",
                exp.DPipe(
                    this=exp.Literal.string('Invalid format: "'),
                    expression=exp.DPipe(
                        this=exp.cast(value.copy(), T.VARCHAR), expression=exp.Literal.string('"')
                    ),
                ),
            ),
        ),
        default=exp.cast(padded, T.DATE),
    )


def _skewness(node: exp.Skewness) -> exp.Expr:
    # DuckDB's skewness is the sample-adjusted G1, Trino's the population
    # g1 = G1 (n-2) / sqrt(n(n-1))
    if isinstance(node.parent, (exp.Window, exp.Filter)):
        raise refuse("skewness() as a window function or with FILTER")
    n = exp.Count(this=_c(node.this))
    factor = _float_divide(
        exp.Sub(this=n.copy(), expression=exp.Literal.number(2)),
        exp.Sqrt(
            this=exp.Mul(
                this=n.copy(),
                expression=exp.paren(
                    exp.Sub(this=n.copy(), expression=exp.Literal.number(1)), copy=False
                ),
            )
        ),
    )
    return exp.Mul(this=_c(node), expression=exp.Paren(this=exp.cast(factor, T.DOUBLE)))


def _cast(node: exp.Cast) -> exp.Expr:
    to = node.to
    if (
        to.this == T.JSON
        and isinstance(node.this, exp.Struct)
        and not any(isinstance(e, (exp.PropertyEQ, exp.Alias)) for e in node.this.expressions)
    ):
        # an anonymous ROW is a JSON object whose keys are all ''
        pieces: list[exp.Expr] = []
        for index, field in enumerate(node.this.expressions):
            pieces.append(exp.Literal.string(("{" if index == 0 else ",") + '"":'))
            pieces.append(exp.cast(_fn("to_json", _c(field)), T.VARCHAR))
        pieces.append(exp.Literal.string("}" if pieces else "{}"))
        text = pieces[0]
        for piece in pieces[1:]:
            text = exp.DPipe(this=text, expression=piece)
        return exp.cast(text, T.JSON)
    return node


def _json_scalar(node: exp.Cast) -> exp.Expr:
    """CAST(json AS varchar): a JSON string's value, a number's or boolean's text; no
    array/object."""
    value = node.this
    kind = _fn("json_type", _c(value))
    return _when(
        (
            exp.In(
                this=kind, expressions=[exp.Literal.string("ARRAY"), exp.Literal.string("OBJECT")]
            ),
            _fail(
                "INVALID_CAST_ARGUMENT",
                exp.DPipe(
                    this=exp.Literal.string("Cannot cast '"),
                    expression=exp.DPipe(
                        this=exp.cast(_c(value), T.VARCHAR),
                        expression=exp.Literal.string("' to varchar"),
                    ),
                ),
            ),
        ),
        default=exp.JSONExtractScalar(this=_c(value), expression=exp.Literal.string("$")),
    )


_JSON_VALUED = (exp.JSONExtract, exp.ParseJSON)


def _cast_json_scalar(node: exp.Cast) -> exp.Expr:
    if (
        node.to.this in (T.VARCHAR, T.TEXT)
        and not node.to.expressions
        and (
            isinstance(node.this, _JSON_VALUED)
            or (isinstance(node.this, exp.Cast) and node.this.to.this == T.JSON)
        )
    ):
        return _json_scalar(node)
    return _cast(node)


_HANDLERS: dict[type, Callable[[Any], exp.Expr]] = {
    exp.Extract: _extract,
    exp.BitwiseAnd: _bitwise,
    exp.BitwiseOr: _bitwise,
    exp.BitwiseXor: _bitwise,
    exp.BitwiseNot: _bitwise,
    exp.Grouping: _grouping,
    exp.Substring: _substring,
    exp.Split: _split,
    exp.SplitPart: _split_part,
    exp.RegexpExtract: _regexp_extract,
    exp.RegexpReplace: _regexp_replace,
    exp.SHA: _sha1,
    exp.SHA2Digest: _sha2,
    exp.Repeat: _repeat,
    exp.Format: _format,
    exp.GenerateSeries: _sequence,
    exp.DateAdd: _date_unit,
    exp.DateDiff: _date_unit,
    exp.Pad: _pad,
    exp.FromISO8601Date: _from_iso8601_date,
    exp.Skewness: _skewness,
    exp.Cast: _cast_json_scalar,
    # Trino functions sqlglot maps to a DuckDB name DuckDB lacks
    exp.StrToMap: _refuse_call,
    exp.FromBase: _refuse_call,
    exp.WidthBucket: _refuse_call,
    exp.Normalize: _refuse_call,
    exp.JSONArrayContains: _refuse_call,
    exp.JSONObject: _refuse_call,
    exp.ParseDatetime: _refuse_call,
}

_ANONYMOUS_HANDLERS: dict[str, Callable[[Any], exp.Expr]] = {
    "millisecond": _millisecond,
    "fail": _fail_call,
    "json_exists": _refuse_call,
    "json_array": _refuse_call,
    "bit_count": lambda node: _bit_count(node) if len(node.expressions) == 2 else node,
}


def _bit_count(node: exp.Anonymous) -> exp.Expr:
    # Trino's bit_count(x, bits) counts the set bits of x's two's complement in `bits` bits
    value, bits = (exp.cast(_c(e), T.BIGINT) for e in node.expressions)
    shift = _fn("least", bits.copy(), exp.Literal.number(63))  # 1 << 64 overflows even unused
    half = exp.paren(
        exp.BitwiseLeftShift(
            this=exp.cast(exp.Literal.number(1), T.BIGINT),
            expression=exp.paren(
                exp.Sub(this=shift.copy(), expression=exp.Literal.number(1)), copy=False
            ),
        ),
        copy=False,
    )

    def text(e: exp.Expr) -> exp.Expr:
        return exp.cast(e.copy(), T.VARCHAR)

    masked = exp.BitwiseAnd(
        this=value.copy(),
        expression=exp.paren(
            exp.Sub(
                this=exp.paren(
                    exp.BitwiseLeftShift(
                        this=exp.cast(exp.Literal.number(1), T.BIGINT), expression=shift.copy()
                    ),
                    copy=False,
                ),
                expression=exp.Literal.number(1),
            ),
            copy=False,
        ),
    )
    return _when(
        (
            exp.or_(
                exp.LT(this=bits.copy(), expression=exp.Literal.number(2)),
                exp.GT(this=bits.copy(), expression=exp.Literal.number(64)),
            ),
            _fail(
                "INVALID_FUNCTION_ARGUMENT",
                exp.DPipe(
                    this=exp.Literal.string(
                        "Bits specified in bit_count must be between 2 and 64, got "
                    ),
                    expression=text(bits),
                ),
            ),
        ),
        (
            exp.EQ(this=bits.copy(), expression=exp.Literal.number(64)),
            exp.cast(_fn("bit_count", value.copy()), T.BIGINT),
        ),
        (
            exp.or_(
                exp.GTE(this=value.copy(), expression=half.copy()),
                exp.LT(this=value.copy(), expression=exp.Neg(this=half.copy())),
            ),
            _fail(
                "INVALID_FUNCTION_ARGUMENT",
                exp.DPipe(
                    this=exp.Literal.string(
                        "Number must be representable with the bits specified. "
                    ),
                    expression=exp.DPipe(
                        this=text(value),
                        expression=exp.DPipe(
                            this=exp.Literal.string(" cannot be represented with "),
                            expression=exp.DPipe(
                                this=text(bits), expression=exp.Literal.string(" bits")
                            ),
                        ),
                    ),
                ),
            ),
        ),
        default=exp.cast(_fn("bit_count", masked), T.BIGINT),
    )


# --- the typed pass -------------------------------------------------------------------------------

_FLOATS = {T.DOUBLE, T.FLOAT}
_INTEGERS = {T.TINYINT, T.SMALLINT, T.INT, T.BIGINT}
_BINARY = {T.VARBINARY, T.BINARY}


def _type(node: exp.Expr | None) -> Any:
    node_type = getattr(node, "type", None) if node is not None else None
    return node_type.this if node_type is not None else None


def rewrite_typed(tree: exp.Expr) -> exp.Expr:
    """Rewrite the calls whose translation depends on their arguments' inferred types."""
    return _post_order(tree, _rewrite_typed)


def _rewrite_typed(node: exp.Expr) -> exp.Expr:
    handler = _TYPED_HANDLERS.get(type(node))
    return handler(node) if handler is not None else node


def _typed(new: exp.Expr, like: exp.Expr) -> exp.Expr:
    new.type = getattr(like, "type", None)
    return new


def _divide(node: exp.Div) -> exp.Expr:
    # the engine divides integers as Trino does (integer_division), which makes DuckDB fail on a
    # double divided by zero; Trino's double division is IEEE (Infinity, NaN)
    if _type(node.this) == T.DOUBLE or _type(node.expression) == T.DOUBLE:
        return _typed(_float_divide(_c(node.this), _c(node.expression)), node)
    if _type(node.this) == T.FLOAT or _type(node.expression) == T.FLOAT:  # real / real is real
        return _typed(
            exp.Anonymous(
                this=exp.to_identifier("/", quoted=True),
                expressions=[
                    exp.cast(_c(node.this), T.FLOAT),
                    exp.cast(_c(node.expression), T.FLOAT),
                ],
            ),
            node,
        )
    return node


def _cast_typed(node: exp.Cast) -> exp.Expr:
    source, target = _type(node.this), node.to.this
    if source in _FLOATS and target in _INTEGERS:
        # Trino rounds half away from zero (DuckDB's round does; its cast rounds half to even)
        new = node.copy()
        new.set("this", exp.Round(this=_c(node.this)))
        return new
    if source in _FLOATS and target in (T.VARCHAR, T.TEXT, T.CHAR):
        raise refuse("CAST(double AS varchar) (Trino writes Java's scientific notation)")
    return node


def _min_max(node: exp.Func) -> exp.Expr:
    # Trino's max/min skip NaN unless every value is NaN; DuckDB orders NaN above everything
    if _type(node.this) not in _FLOATS or node.expressions:
        return node
    if isinstance(node.parent, (exp.Window, exp.Filter)):
        raise refuse(f"{node.sql_name().lower()}() of a double as a window function or with FILTER")
    skipping = exp.Filter(
        this=node.copy(), expression=exp.Where(this=exp.Not(this=_fn("isnan", _c(node.this))))
    )
    return _typed(exp.Coalesce(this=skipping, expressions=[node.copy()]), node)


def _sign(node: exp.Sign) -> exp.Expr:
    # DuckDB's sign() is a tinyint; Trino's has the argument's type
    source = getattr(node.this, "type", None)
    if source is not None and source.this in _FLOATS | _INTEGERS:
        return _typed(exp.cast(_c(node), source.copy()), node)
    return node


def _real_aggregate(node: exp.Expr) -> exp.Expr:
    # sum/avg of a real is a real in Trino (DuckDB: double)
    if _type(node.this) == T.FLOAT and not isinstance(node.parent, (exp.Window, exp.Filter)):
        return exp.cast(_c(node), T.FLOAT)
    return node


def _real_statistic(node: exp.Expr) -> exp.Expr:
    # corr/covar_* choose their real signature unless an argument is a double (Trino coerces
    # integers and decimals to real); DuckDB answers a double
    arguments = [node.this, node.expression]
    if (
        any(_type(a) is None for a in arguments)
        or any(_type(a) == T.DOUBLE for a in arguments)
        or isinstance(node.parent, (exp.Window, exp.Filter))
    ):
        return node
    return exp.cast(_c(node), T.FLOAT)


def _approx_percentile(node: exp.ApproxQuantile) -> exp.Expr:
    # Trino's approx_percentile has bigint, double and real signatures (integers are bigints,
    # decimals doubles); DuckDB keeps the argument's type. Called by name: sqlglot's rendering
    # would cast the result to double.
    value, kind = _c(node.this), _type(node.this)
    if kind in _INTEGERS:
        value = exp.cast(value, T.BIGINT)
    elif kind in (T.DECIMAL, T.BIGDECIMAL):
        value = exp.cast(value, T.DOUBLE)
    return _fn("approx_quantile", value, _c(node.args["quantile"]))


def _length(node: exp.Length) -> exp.Expr:
    if _type(node.this) in _BINARY or isinstance(node.this, (exp.HexString, exp.Encode, exp.Unhex)):
        return _fn("octet_length", _c(node.this))  # a varbinary's length is its bytes
    return node


def _bracket(node: exp.Bracket) -> exp.Expr:
    container, keys = node.this, node.expressions
    if len(keys) != 1:
        return node
    key = keys[0]
    safe = bool(node.args.get("safe"))  # element_at(); a subscript fails instead of NULL
    literal = _literal_int(key)
    if not node.args.get("offset") and literal is not None:
        key = _int(literal + 1)  # sqlglot keeps a literal subscript 0-based
    kind = _type(container)
    if kind == T.MAP and not safe:
        missing = exp.Not(this=_fn("map_contains", _c(container), _c(key)))
        return _typed(
            _when(
                (
                    missing,
                    _fail(
                        "INVALID_FUNCTION_ARGUMENT",
                        exp.DPipe(
                            this=exp.Literal.string("Key not present in map: "),
                            expression=exp.cast(_c(key), T.VARCHAR),
                        ),
                    ),
                ),
                default=_c(node),
            ),
            node,
        )
    if kind != T.ARRAY and not isinstance(container, exp.Array):
        return node
    checks: list[tuple[exp.Expr, exp.Expr]] = [
        (
            exp.EQ(this=_c(key), expression=exp.Literal.number(0)),
            _fail("INVALID_FUNCTION_ARGUMENT", "SQL array indices start at 1"),
        )
    ]
    if not safe:
        text = exp.cast(_c(key), T.VARCHAR)
        checks.append(
            (
                exp.LT(this=_c(key), expression=exp.Literal.number(0)),
                _fail(
                    "INVALID_FUNCTION_ARGUMENT",
                    exp.DPipe(
                        this=exp.Literal.string("Array subscript is negative: "), expression=text
                    ),
                ),
            )
        )
        checks.append(
            (
                exp.GT(this=_c(key), expression=_fn("len", _c(container))),
                _fail(
                    "INVALID_FUNCTION_ARGUMENT",
                    exp.DPipe(
                        this=exp.Literal.string(
                            "Array subscript must be less than or equal to array length: "
                        ),
                        expression=exp.DPipe(
                            this=text.copy(),
                            expression=exp.DPipe(
                                this=exp.Literal.string(" > "),
                                expression=exp.cast(_fn("len", _c(container)), T.VARCHAR),
                            ),
                        ),
                    ),
                ),
            )
        )
    return _typed(_when(*checks, default=_c(node)), node)


def _compare(node: exp.Expr) -> exp.Expr:
    # NaN is unequal and unordered to everything in Trino; DuckDB orders it above all values
    sides = (node.this, node.expression)
    if not any(_type(side) in _FLOATS for side in sides):
        return node
    nan = exp.or_(*[_fn("isnan", _c(side)) for side in sides if _type(side) in _FLOATS])
    known = exp.and_(
        *[exp.Not(this=exp.Is(this=_c(side), expression=exp.null())) for side in sides]
    )
    return _when(
        (exp.and_(nan, known), exp.Boolean(this=isinstance(node, exp.NEQ))), default=_c(node)
    )


_TYPED_HANDLERS: dict[type, Callable[[Any], exp.Expr]] = {
    exp.Upper: _upper,  # here so the varchar(n) bound semantics gives upper() stays
    exp.EQ: _compare,
    exp.NEQ: _compare,
    exp.LT: _compare,
    exp.LTE: _compare,
    exp.GT: _compare,
    exp.GTE: _compare,
    exp.Div: _divide,
    exp.Cast: _cast_typed,
    exp.Max: _min_max,
    exp.Min: _min_max,
    exp.Sign: _sign,
    exp.Sum: _real_aggregate,
    exp.Avg: _real_aggregate,
    exp.Corr: _real_statistic,
    exp.CovarPop: _real_statistic,
    exp.CovarSamp: _real_statistic,
    exp.ApproxQuantile: _approx_percentile,
    exp.Length: _length,
    exp.Bracket: _bracket,
}
