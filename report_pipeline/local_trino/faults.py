"""Fault injection for tests and demos: off unless a fault is added.

A fault applies to the next `times` statements whose text matches `pattern` (a case-insensitive
regular expression searched in the SQL as received), then retires. Actions:
- `error`: the statement fails with the given Trino error (name, type, message);
- `stall`: the statement sits in RUNNING for `seconds` before it executes (cancellable; a test
  may `release` it early, as a lock that is let go);
- `drop`: the statement runs, but every poll of it gets its connection closed without an answer,
  so the client cannot learn the outcome and must look the query up by id.
"""

from __future__ import annotations

import itertools
import re
import threading
from dataclasses import dataclass, field, fields
from typing import Literal

from report_pipeline.local_trino.errors import ErrorType, error_code

Action = Literal["error", "stall", "drop"]


@dataclass
class Fault:
    pattern: str
    action: Action
    times: int | None = 1  # None: every matching statement, until cleared
    error_name: str = "GENERIC_INTERNAL_ERROR"
    error_type: str | None = None  # needed only for names outside Trino's standard list
    message: str = "Injected fault"
    seconds: float = 0.0
    id: int = field(default=0, compare=False)
    fired: int = field(default=0, compare=False)
    released: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.action not in ("error", "stall", "drop"):
            raise ValueError(f"unknown fault action {self.action!r}: use error, stall or drop")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be a positive number of statements, or None for always")
        if self.action == "stall" and self.seconds <= 0:
            raise ValueError("a stall needs seconds > 0")
        if self.error_type is not None:
            self.error_type = ErrorType(self.error_type).value
        error_code(self.error_name, self.error_type)  # fails early on an unknown error name
        try:
            re.compile(self.pattern)
        except re.error as error:
            raise ValueError(f"invalid pattern {self.pattern!r}: {error}") from None

    def release(self) -> None:
        """End the stalls of this fault now: held statements run on."""
        self.released.set()

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "released"}

    @classmethod
    def from_json(cls, spec: object) -> Fault:
        """A fault from the JSON of `POST /v1/local/faults` (its bookkeeping fields ignored);
        ValueError or TypeError on a bad one."""
        if not isinstance(spec, dict):
            raise ValueError("a fault is a JSON object")
        return cls(**{k: v for k, v in spec.items() if k not in ("id", "fired", "released")})


class FaultInjector:
    """The active faults of one engine; thread-safe."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            fault.id = next(self._ids)
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, sql: str) -> Fault | None:
        """The first active fault matching this statement, counting it as fired."""
        with self._lock:
            for fault in self._faults:
                if re.search(fault.pattern, sql, re.IGNORECASE):
                    fault.fired += 1
                    if fault.times is not None and fault.fired >= fault.times:
                        self._faults.remove(fault)
                    return fault
        return None
