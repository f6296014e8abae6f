"""Trino's error model: standard error codes, and the mapping from DuckDB exceptions onto them.

A client decides what to do with a failure by its `errorName` and `errorType` (USER_ERROR,
INTERNAL_ERROR, INSUFFICIENT_RESOURCES, EXTERNAL), so the engine must fail exactly as Trino would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import duckdb


class ErrorType(StrEnum):
    USER_ERROR = "USER_ERROR"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    INSUFFICIENT_RESOURCES = "INSUFFICIENT_RESOURCES"
    EXTERNAL = "EXTERNAL"


@dataclass(frozen=True)
class ErrorCode:
    name: str
    code: int
    type: ErrorType


# Codes and types as Trino's StandardErrorCode defines them (the subset this engine can raise).
_STANDARD = [
    ("GENERIC_USER_ERROR", 0, ErrorType.USER_ERROR),
    ("SYNTAX_ERROR", 1, ErrorType.USER_ERROR),
    ("ABANDONED_QUERY", 2, ErrorType.USER_ERROR),
    ("USER_CANCELED", 3, ErrorType.USER_ERROR),
    ("PERMISSION_DENIED", 4, ErrorType.USER_ERROR),
    ("NOT_FOUND", 5, ErrorType.USER_ERROR),
    ("FUNCTION_NOT_FOUND", 6, ErrorType.USER_ERROR),
    ("INVALID_FUNCTION_ARGUMENT", 7, ErrorType.USER_ERROR),
    ("DIVISION_BY_ZERO", 8, ErrorType.USER_ERROR),
    ("INVALID_CAST_ARGUMENT", 9, ErrorType.USER_ERROR),
    ("ALREADY_EXISTS", 12, ErrorType.USER_ERROR),
    ("NOT_SUPPORTED", 13, ErrorType.USER_ERROR),
    ("INVALID_SESSION_PROPERTY", 14, ErrorType.USER_ERROR),
    ("INVALID_WINDOW_FRAME", 15, ErrorType.USER_ERROR),
    ("CONSTRAINT_VIOLATION", 16, ErrorType.USER_ERROR),
    ("TRANSACTION_CONFLICT", 17, ErrorType.USER_ERROR),
    ("NUMERIC_VALUE_OUT_OF_RANGE", 19, ErrorType.USER_ERROR),
    ("UNKNOWN_TRANSACTION", 20, ErrorType.USER_ERROR),
    ("NOT_IN_TRANSACTION", 21, ErrorType.USER_ERROR),
    ("TRANSACTION_ALREADY_ABORTED", 22, ErrorType.USER_ERROR),
    ("READ_ONLY_VIOLATION", 23, ErrorType.USER_ERROR),
    ("AUTOCOMMIT_WRITE_CONFLICT", 25, ErrorType.USER_ERROR),
    ("INCOMPATIBLE_CLIENT", 27, ErrorType.USER_ERROR),
    ("SUBQUERY_MULTIPLE_ROWS", 28, ErrorType.USER_ERROR),
    ("PROCEDURE_NOT_FOUND", 29, ErrorType.USER_ERROR),
    ("INVALID_PROCEDURE_ARGUMENT", 30, ErrorType.USER_ERROR),
    ("SCHEMA_NOT_EMPTY", 34, ErrorType.USER_ERROR),
    ("QUERY_TEXT_TOO_LARGE", 35, ErrorType.USER_ERROR),
    ("ADMINISTRATIVELY_KILLED", 38, ErrorType.USER_ERROR),
    ("TYPE_NOT_FOUND", 43, ErrorType.USER_ERROR),
    ("CATALOG_NOT_FOUND", 44, ErrorType.USER_ERROR),
    ("SCHEMA_NOT_FOUND", 45, ErrorType.USER_ERROR),
    ("TABLE_NOT_FOUND", 46, ErrorType.USER_ERROR),
    ("COLUMN_NOT_FOUND", 47, ErrorType.USER_ERROR),
    ("SCHEMA_ALREADY_EXISTS", 49, ErrorType.USER_ERROR),
    ("TABLE_ALREADY_EXISTS", 50, ErrorType.USER_ERROR),
    ("MISSING_CATALOG_NAME", 56, ErrorType.USER_ERROR),
    ("MISSING_SCHEMA_NAME", 57, ErrorType.USER_ERROR),
    ("TYPE_MISMATCH", 58, ErrorType.USER_ERROR),
    ("DUPLICATE_NAMED_QUERY", 53, ErrorType.USER_ERROR),
    ("DUPLICATE_COLUMN_NAME", 54, ErrorType.USER_ERROR),
    ("MISSING_COLUMN_NAME", 55, ErrorType.USER_ERROR),
    ("INVALID_LITERAL", 59, ErrorType.USER_ERROR),
    ("COLUMN_TYPE_UNKNOWN", 60, ErrorType.USER_ERROR),
    ("MISMATCHED_COLUMN_ALIASES", 61, ErrorType.USER_ERROR),
    ("AMBIGUOUS_NAME", 62, ErrorType.USER_ERROR),
    ("INVALID_COLUMN_REFERENCE", 63, ErrorType.USER_ERROR),
    ("NESTED_AGGREGATION", 67, ErrorType.USER_ERROR),
    ("NESTED_WINDOW", 68, ErrorType.USER_ERROR),
    ("EXPRESSION_NOT_AGGREGATE", 73, ErrorType.USER_ERROR),
    ("EXPRESSION_NOT_SCALAR", 74, ErrorType.USER_ERROR),
    ("INVALID_PARAMETER_USAGE", 80, ErrorType.USER_ERROR),
    ("GENERIC_INTERNAL_ERROR", 65536, ErrorType.INTERNAL_ERROR),
    ("SERVER_SHUTTING_DOWN", 65545, ErrorType.INTERNAL_ERROR),
    ("GENERIC_INSUFFICIENT_RESOURCES", 131072, ErrorType.INSUFFICIENT_RESOURCES),
    ("EXCEEDED_GLOBAL_MEMORY_LIMIT", 131073, ErrorType.INSUFFICIENT_RESOURCES),
    ("QUERY_QUEUE_FULL", 131074, ErrorType.INSUFFICIENT_RESOURCES),
    ("EXCEEDED_TIME_LIMIT", 131075, ErrorType.INSUFFICIENT_RESOURCES),
    ("EXCEEDED_LOCAL_MEMORY_LIMIT", 131079, ErrorType.INSUFFICIENT_RESOURCES),
]
STANDARD_ERRORS: dict[str, ErrorCode] = {n: ErrorCode(n, c, t) for n, c, t in _STANDARD}

# Connector errors (Hive, Iceberg, JDBC, ...) use codes from 0x0100_0000 upwards and type EXTERNAL.
CONNECTOR_ERROR_BASE = 0x0100_0000
_DEFAULT_CODE = {
    ErrorType.USER_ERROR: 0,
    ErrorType.INTERNAL_ERROR: 65536,
    ErrorType.INSUFFICIENT_RESOURCES: 131072,
    ErrorType.EXTERNAL: CONNECTOR_ERROR_BASE,
}


def error_code(
    name: str, error_type: ErrorType | str | None = None, code: int | None = None
) -> ErrorCode:
    """The code for a standard error name, or a custom one (a connector's EXTERNAL error, say)."""
    if name in STANDARD_ERRORS and error_type is None and code is None:
        return STANDARD_ERRORS[name]
    if error_type is None:
        raise ValueError(f"unknown Trino error name {name!r}: give its error type too")
    error_type = ErrorType(error_type)
    return ErrorCode(name, _DEFAULT_CODE[error_type] if code is None else code, error_type)


class TrinoError(Exception):
    """A failure reported to the client the way Trino reports it."""

    def __init__(
        self,
        name: str,
        message: str,
        *,
        error_type: ErrorType | str | None = None,
        code: int | None = None,
        line: int | None = None,
        column: int | None = None,
        cause_type: str | None = None,
    ):
        super().__init__(message)
        self.error = error_code(name, error_type, code)
        self.message = message
        self.line = line
        self.column = column
        self.cause_type = cause_type or "io.trino.spi.TrinoException"

    @property
    def name(self) -> str:
        return self.error.name

    def to_json(self) -> dict:
        doc: dict[str, Any] = {
            "message": self.message,
            "errorCode": self.error.code,
            "errorName": self.error.name,
            "errorType": self.error.type.value,
            "failureInfo": {
                "type": self.cause_type,
                "message": self.message,
                "suppressed": [],
                "stack": [],
            },
        }
        if self.line is not None:
            location = {"lineNumber": self.line, "columnNumber": self.column or 1}
            doc["errorLocation"] = location
            doc["failureInfo"]["errorLocation"] = location
        return doc


# DuckDB exception class -> list of (message pattern, Trino error name); the first match wins.
_DUCKDB_RULES: list[tuple[type[BaseException], list[tuple[str, str]]]] = [
    (
        duckdb.ParserException,
        [
            (r"Duplicate CTE name", "DUPLICATE_NAMED_QUERY"),
            (r"^Frame (start|end) cannot", "INVALID_WINDOW_FRAME"),
            ("", "SYNTAX_ERROR"),
        ],
    ),
    (
        duckdb.DependencyException,
        [(r"because there are entries that depend on it", "SCHEMA_NOT_EMPTY")],
    ),
    (
        duckdb.CatalogException,
        [
            (r"Table with name .* does not exist", "TABLE_NOT_FOUND"),
            (r"View with name .* does not exist", "TABLE_NOT_FOUND"),
            (r"Schema with name .* does not exist", "SCHEMA_NOT_FOUND"),
            (r"Catalog .* does not exist", "CATALOG_NOT_FOUND"),
            (r"Table with name .* already exists", "TABLE_ALREADY_EXISTS"),
            (r"Schema with name .* already exists", "SCHEMA_ALREADY_EXISTS"),
            (r"already exists", "ALREADY_EXISTS"),
            (r"Function with name .* does not exist", "FUNCTION_NOT_FOUND"),
            (r"Type with name .* does not exist", "TYPE_NOT_FOUND"),
            (r"depend|dependencies", "SCHEMA_NOT_EMPTY"),
            ("", "GENERIC_USER_ERROR"),
        ],
    ),
    (
        duckdb.BinderException,
        [
            # a qualifier naming no table in FROM: Trino cannot resolve the column it qualifies
            (
                r"Referenced column .* not found|Column .* not found|does not have a column"
                r"|Referenced table .* not found",
                "COLUMN_NOT_FOUND",
            ),
            (r"Ambiguous reference", "AMBIGUOUS_NAME"),
            (r"aggregate function calls cannot be nested", "NESTED_AGGREGATION"),
            (r"aggregate function calls cannot contain window function", "NESTED_WINDOW"),
            (
                r"(WHERE|JOIN|GROUP BY) clause cannot contain (aggregates|window functions)",
                "EXPRESSION_NOT_SCALAR",
            ),
            (r"(ORDER|GROUP BY) term out of range", "INVALID_COLUMN_REFERENCE"),
            # INSERT with fewer or more values than columns: Trino compares the row types
            (r"has \d+ columns but \d+ values were supplied", "TYPE_MISMATCH"),
            (
                r"must appear in the GROUP BY|must be part of an aggregate",
                "EXPRESSION_NOT_AGGREGATE",
            ),
            (r"No function matches|Could not choose a best candidate", "FUNCTION_NOT_FOUND"),
            (r"Cannot compare|Cannot mix|cannot be cast", "TYPE_MISMATCH"),
            ("", "GENERIC_USER_ERROR"),
        ],
    ),
    (
        duckdb.ConversionException,
        [
            # a number outside the target type's range (a string or a decimal that does not fit
            # stays a cast error, and so does a double cast to bigint: Trino's "Unable to cast")
            (r"^Type (DOUBLE|FLOAT) with value .* destination type INT64", "INVALID_CAST_ARGUMENT"),
            (
                r"^Type (U?INT\d+|HUGEINT|DOUBLE|FLOAT) with value .* "
                r"out of range for the destination type",
                "NUMERIC_VALUE_OUT_OF_RANGE",
            ),
            # a cast between types DuckDB cannot convert at all: Trino refuses such operands when
            # typing
            (r"^Unimplemented type for cast", "TYPE_MISMATCH"),
            ("", "INVALID_CAST_ARGUMENT"),
        ],
    ),
    (duckdb.OutOfRangeException, [("", "NUMERIC_VALUE_OUT_OF_RANGE")]),
    (duckdb.ConstraintException, [("", "CONSTRAINT_VIOLATION")]),
    (duckdb.TransactionException, [("", "TRANSACTION_CONFLICT")]),
    (duckdb.OutOfMemoryException, [("", "EXCEEDED_LOCAL_MEMORY_LIMIT")]),
    (
        duckdb.InvalidInputException,
        [
            (r"[Dd]ivision by zero", "DIVISION_BY_ZERO"),
            (r"More than one row returned by a subquery", "SUBQUERY_MULTIPLE_ROWS"),
            (r"Values were not provided for the following parameters", "INVALID_PARAMETER_USAGE"),
            ("", "INVALID_FUNCTION_ARGUMENT"),
        ],
    ),
    (duckdb.NotImplementedException, [("", "NOT_SUPPORTED")]),
    # DuckDB's own refusal to touch files or the network (it is locked away from the host)
    (duckdb.PermissionException, [("", "PERMISSION_DENIED")]),
]

_DUCKDB_PREFIX = re.compile(r"^[A-Za-z ]+ Error: ")


_TRINO_MESSAGES = {
    # DuckDB's wording -> Trino's, for the errors clients most often match on
    "TABLE_NOT_FOUND": (
        r"(?:Table|View) with name (\S+) does not exist",
        "Table '{0}' does not exist",
    ),
    "SCHEMA_NOT_FOUND": (r"Schema with name (\S+) does not exist", "Schema '{0}' does not exist"),
    "TABLE_ALREADY_EXISTS": (
        r"Table with name \"?([^\s\"]+)\"? already exists",
        "Table '{0}' already exists",
    ),
    "COLUMN_NOT_FOUND": (
        r'Referenced column "?([^\s"]+)"? not found',
        "Column '{0}' cannot be resolved",
    ),
    "DIVISION_BY_ZERO": (r"[Dd]ivision by zero", "Division by zero"),
}


# A translated function fails the way Trino does by calling DuckDB's error() with this marker
# (functions.py): the marker names the Trino error, the rest is Trino's message.
_RAISED = re.compile(r"^\[trino:([A-Z_]+)\] (.*)$", re.S)


def raised_marker(name: str) -> str:
    return f"[trino:{name}] "


def from_duckdb(exc: duckdb.Error) -> TrinoError:
    """Map a DuckDB failure onto the Trino error a coordinator would report for it."""
    # DuckDB appends suggestions and a caret diagram on later lines; Trino's message is one line.
    message = _DUCKDB_PREFIX.sub("", str(exc)).strip().splitlines()[0].rstrip("!")
    raised = _RAISED.match(message)
    if raised and raised.group(1) in STANDARD_ERRORS:
        return TrinoError(raised.group(1), raised.group(2), cause_type=type(exc).__name__)
    error = _classify(exc, message)
    rewrite = _TRINO_MESSAGES.get(error.name)
    if rewrite is not None:
        pattern, template = rewrite
        match = re.search(pattern, message)
        if match:
            error.message = template.format(*(g.strip("!") for g in match.groups()))
            error.args = (error.message,)
    return error


def _classify(exc: duckdb.Error, message: str) -> TrinoError:
    for exc_class, rules in _DUCKDB_RULES:
        if isinstance(exc, exc_class):
            for pattern, name in rules:
                if re.search(pattern, message):
                    return TrinoError(name, message, cause_type=type(exc).__name__)
    return TrinoError("GENERIC_INTERNAL_ERROR", message, cause_type=type(exc).__name__)
