"""DuckDB result types as Trino column types, and their values as Trino's JSON wire format.

The client builds `cursor.description` and its value mappers from `typeSignature`, so every type
carries the arguments Trino sends: varchar length, decimal precision and scale, time precision.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from report_pipeline.local_trino.errors import TrinoError

UNBOUNDED_VARCHAR = 2147483647
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1

Encoder = Callable[[Any], Any] | None


@dataclass(frozen=True)
class TrinoType:
    """A Trino type: its display name, its type signature, and how to encode one value."""

    name: str
    signature: dict
    encode: Encoder = None  # None: the Python value is already its JSON form

    @property
    def fixed_size(self) -> int:
        """Bytes per value for fixed-width types, 0 for variable-width ones (DESCRIBE OUTPUT's
        Type Size)."""
        return _FIXED_SIZES.get(self.signature["rawType"], 0)


_FIXED_SIZES = {
    "boolean": 1,
    "tinyint": 1,
    "smallint": 2,
    "integer": 4,
    "bigint": 8,
    "real": 4,
    "double": 8,
    "date": 4,
    "timestamp": 8,
    "timestamp with time zone": 8,
    "time": 8,
    "time with time zone": 8,
    "uuid": 16,
    "ipaddress": 16,
    "interval day to second": 8,
    "interval year to month": 4,
}


def _signature(raw: str, *arguments: dict) -> dict:
    return {"rawType": raw, "arguments": list(arguments)}


def _long(value: int) -> dict:
    return {"kind": "LONG", "value": value}


def _type_arg(t: TrinoType) -> dict:
    return {"kind": "TYPE", "value": t.signature}


def _simple(name: str, encode: Encoder = None) -> TrinoType:
    return TrinoType(name, _signature(name), encode)


def _nullable(encode: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else encode(value)


def _double(value: float) -> Any:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _shortest_real(value: float) -> float:
    """A 32-bit float as the shortest decimal that reads back as the same float (Trino writes 1.3,
    not the 1.2999999523 its widening to a double would show)."""
    if math.isnan(value) or math.isinf(value):
        return value
    single = struct.unpack("f", struct.pack("f", value))[0]
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.unpack("f", struct.pack("f", candidate))[0] == single:
            return candidate
    return value


def _checked_bigint(value: int) -> int:
    # DuckDB widens sum(bigint) to a 128-bit integer; Trino's sum(bigint) is a bigint that fails
    # on overflow, so an out-of-range value is an error rather than a silently different type.
    if not BIGINT_MIN <= value <= BIGINT_MAX:
        raise TrinoError("NUMERIC_VALUE_OUT_OF_RANGE", f"bigint addition overflow: {value}")
    return value


def _timestamp(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _fraction(digits: int) -> Callable[[str], str]:
    """Cut microsecond text to `digits` fractional digits (0: no fraction), as Trino prints
    precision."""
    if digits == 6:
        return lambda text: text
    if digits == 9:  # DuckDB hands nanosecond timestamps over as microseconds
        return lambda text: text + "000"
    if digits == 0:
        return lambda text: text[: text.index(".")] if "." in text else text
    return lambda text: text[: text.index(".") + 1 + digits] if "." in text else text


def _time_tz(value: dt.time) -> str:
    return _with_offset(value.strftime("%H:%M:%S.%f"), value)


def _with_offset(text: str, value: dt.time) -> str:
    offset = value.utcoffset() or dt.timedelta(0)
    sign = "-" if offset < dt.timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _zone_name(tz: dt.tzinfo | None, value: dt.datetime) -> str:
    name = getattr(tz, "zone", None) or getattr(tz, "key", None)
    # Etc/GMT+5 is a whole-hour offset, its sign inverted
    if name and name.startswith("Etc/GMT") and name[7:8] in ("+", "-"):
        return f"{'-' if name[7] == '+' else '+'}{int(name[8:]):02d}:00"
    if name:
        return "UTC" if name in ("Etc/UTC", "UTC") else name
    offset = value.utcoffset() or dt.timedelta(0)
    sign = "-" if offset < dt.timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _timestamp_tz(value: dt.datetime) -> str:
    return f"{_timestamp(value)} {_zone_name(value.tzinfo, value)}"


def _interval_day_second(value: dt.timedelta) -> str:
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    seconds = value.seconds
    return (
        f"{sign}{value.days} {seconds // 3600:02d}:{seconds // 60 % 60:02d}:"
        f"{seconds % 60:02d}.{value.microseconds // 1000:03d}"
    )


_PRIMITIVES: dict[str, TrinoType] = {
    "boolean": _simple("boolean"),
    "tinyint": _simple("tinyint"),
    "smallint": _simple("smallint"),
    "integer": _simple("integer"),
    "bigint": _simple("bigint"),
    "utinyint": _simple("smallint"),
    "usmallint": _simple("integer"),
    "uinteger": _simple("bigint"),
    "ubigint": _simple("bigint", _nullable(_checked_bigint)),
    "hugeint": _simple("bigint", _nullable(_checked_bigint)),
    "uhugeint": _simple("bigint", _nullable(_checked_bigint)),
    "float": _simple("real", _nullable(lambda v: _double(_shortest_real(v)))),
    "double": _simple("double", _nullable(_double)),
    "date": _simple("date", _nullable(dt.date.isoformat)),
    "blob": _simple("varbinary", _nullable(lambda v: base64.b64encode(v).decode("ascii"))),
    "uuid": _simple("uuid", _nullable(str)),
    "json": _simple("json"),
    # Trino spells this one type's name in capitals in the column's `type`
    "interval": TrinoType(
        "INTERVAL DAY TO SECOND",
        _signature("interval day to second"),
        _nullable(_interval_day_second),
    ),
    "null": _simple("unknown"),
    '"null"': _simple("unknown"),
}

_VARCHAR = TrinoType("varchar", _signature("varchar", _long(UNBOUNDED_VARCHAR)))


def trino_type(duck_type: Any) -> TrinoType:
    """The Trino type of a DuckDB result column (a DuckDBPyType)."""
    type_id = duck_type.id
    if type_id in _PRIMITIVES:
        return _PRIMITIVES[type_id]
    if type_id == "varchar" and str(duck_type) == "JSON":  # DuckDB's json is an alias of varchar
        return _PRIMITIVES["json"]
    if type_id in ("varchar", "enum", "bit"):
        return TrinoType(
            _VARCHAR.name, _VARCHAR.signature, _nullable(str) if type_id != "varchar" else None
        )
    children = dict(duck_type.children) if type_id in ("decimal", "list", "array", "map") else {}
    if type_id == "decimal":
        precision, scale = children["precision"], children["scale"]
        return TrinoType(
            f"decimal({precision}, {scale})",
            _signature("decimal", _long(precision), _long(scale)),
            _nullable(str),
        )
    if type_id in _TIMESTAMP_PRECISION:
        precision = _TIMESTAMP_PRECISION[type_id]
        cut = _fraction(precision)
        return TrinoType(
            f"timestamp({precision})",
            _signature("timestamp", _long(precision)),
            _nullable(lambda v: cut(_timestamp(v))),
        )
    if type_id == "time with time zone":
        return TrinoType(
            "time(6) with time zone",
            _signature("time with time zone", _long(6)),
            _nullable(_time_tz),
        )
    if type_id == "timestamp with time zone":
        return TrinoType(
            "timestamp(6) with time zone",
            _signature("timestamp with time zone", _long(6)),
            _nullable(_timestamp_tz),
        )
    if type_id == "time":
        return TrinoType(
            "time(6)", _signature("time", _long(6)), _nullable(lambda v: v.strftime("%H:%M:%S.%f"))
        )
    if type_id in ("list", "array"):
        element = trino_type(children["child"])
        encode = element.encode
        return TrinoType(
            f"array({element.name})",
            _signature("array", _type_arg(element)),
            _nullable(lambda v: [encode(x) for x in v] if encode else list(v)),
        )
    if type_id == "map":
        key, value = trino_type(children["key"]), trino_type(children["value"])
        key_enc = key.encode or (lambda x: x)
        value_enc = value.encode or (lambda x: x)
        return TrinoType(
            f"map({key.name}, {value.name})",
            _signature("map", _type_arg(key), _type_arg(value)),
            _nullable(lambda v: {str(key_enc(k)): value_enc(x) for k, x in v.items()}),
        )
    if type_id in ("struct", "tuple"):
        # a ROW(...) without field names is DuckDB's unnamed struct: fields named '' (a Python
        # tuple)
        fields = [(name, trino_type(child)) for name, child in duck_type.children]
        encoders = [f.encode or (lambda x: x) for _, f in fields]
        names = [name for name, _ in fields]
        arguments = [
            {
                "kind": "NAMED_TYPE",
                "value": {
                    **({"fieldName": {"name": name}} if name else {}),
                    "typeSignature": f.signature,
                },
            }
            for name, f in fields
        ]
        display = ", ".join(f"{name} {f.name}" if name else f.name for name, f in fields)

        def encode_row(value: Any) -> list:
            values = value if isinstance(value, tuple) else [value[n] for n in names]
            return [enc(v) for v, enc in zip(values, encoders, strict=True)]

        return TrinoType(
            f"row({display})", {"rawType": "row", "arguments": arguments}, _nullable(encode_row)
        )
    raise TrinoError(
        "NOT_SUPPORTED", f"Result type {duck_type} has no Trino equivalent in the local engine"
    )


# DuckDB's timestamp types by fractional digits (nanoseconds arrive as microseconds from DuckDB)
_TIMESTAMP_PRECISION = {"timestamp_s": 0, "timestamp_ms": 3, "timestamp": 6, "timestamp_ns": 9}


def bounded_varchar(values: list[Any]) -> TrinoType:
    """varchar(n), n the longest of the values: the type Trino gives a column of literal strings."""
    return bounded_varchar_type(max((len(v) for v in values if isinstance(v, str)), default=0))


def bounded_varchar_type(length: int) -> TrinoType:
    return TrinoType(f"varchar({length})", _signature("varchar", _long(length)))


def timestamp_tz_type(precision: int) -> TrinoType:
    """timestamp(p) with time zone, for a column whose DuckDB type keeps microseconds."""
    cut = _fraction(precision)
    return TrinoType(
        f"timestamp({precision}) with time zone",
        _signature("timestamp with time zone", _long(precision)),
        _nullable(lambda v: f"{cut(_timestamp(v))} {_zone_name(v.tzinfo, v)}"),
    )


def output_type(name: str) -> TrinoType:
    """The Trino type a statement's analysis gave an output column, where DuckDB has no type of that
    precision or bound: varchar(n), timestamp(p) / time(p) with or without time zone (p <= 6)."""
    raw, _, rest = name.partition("(")
    digits, _, suffix = rest.partition(")")
    size = int(digits)
    cut = _fraction(size)
    if raw == "varchar":
        return bounded_varchar_type(size)
    if raw == "timestamp" and suffix == " with time zone":
        return timestamp_tz_type(size)
    if raw == "timestamp":
        return TrinoType(
            name, _signature("timestamp", _long(size)), _nullable(lambda v: cut(_timestamp(v)))
        )
    if raw == "time" and suffix == " with time zone":
        return TrinoType(
            name,
            _signature("time with time zone", _long(size)),
            _nullable(lambda v: _with_offset(cut(v.strftime("%H:%M:%S.%f")), v)),
        )
    if raw == "time":
        return TrinoType(
            name,
            _signature("time", _long(size)),
            _nullable(lambda v: cut(v.strftime("%H:%M:%S.%f"))),
        )
    raise ValueError(f"no output type {name!r}")


def column_json(name: str, t: TrinoType) -> dict:
    return {"name": name, "type": t.name, "typeSignature": t.signature}


def row_encoder(types: list[TrinoType]) -> Callable[[tuple], list]:
    """One function that turns a DuckDB row into its Trino JSON form, skipping columns that need
    nothing."""
    encoders = [(i, t.encode) for i, t in enumerate(types) if t.encode is not None]
    if not encoders:
        return list

    def encode(row: tuple) -> list:
        out = list(row)
        for i, enc in encoders:
            out[i] = enc(out[i])
        return out

    return encode
