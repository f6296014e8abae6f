"""How a saga's scratch tables are named, and read back: `saga_<key>_<name>`.

The key is the saga id lower-cased, with only its letters and digits (at most 40 of them), so that a
table's name says which saga made it. The runner names a report's tables so
(`ReportSpec.scratch_tables`), the scratch sweeper reads the key back from each table it lists, and
the ledger finds the saga by that key (`SqlLedger.find_saga_by_key`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

KEY_LENGTH = 40
_SCRATCH_NAME = re.compile(rf"^saga_([a-z0-9]{{1,{KEY_LENGTH}}})_([a-z][a-z0-9_]*)$")


@dataclass(frozen=True)
class ScratchName:
    saga_key: str
    table: str  # the name the report gives the table (its `tables` entry)


def saga_key(saga_id: str) -> str:
    """The saga id as it appears in table names: lower-case letters and digits only."""
    key = "".join(ch for ch in saga_id.lower() if ch.isalnum())
    if not key:
        raise ValueError(f"saga id {saga_id!r} has no letters or digits")
    return key[:KEY_LENGTH]


def scratch_table_name(saga_id: str, table: str) -> str:
    return f"saga_{saga_key(saga_id)}_{table}"


def parse_scratch_name(table_name: str) -> ScratchName | None:
    """The saga key and table of a name made by `scratch_table_name`; None for any other name."""
    match = _SCRATCH_NAME.match(table_name)
    return ScratchName(match.group(1), match.group(2)) if match else None


def saga_key_sql(saga_id: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """`saga_key` in SQL, to look a saga up by its key: the same for ids of letters, digits and
    dashes (Dagster's run ids, hence every saga id)."""
    return sa.func.substr(sa.func.lower(sa.func.replace(saga_id, "-", "")), 1, KEY_LENGTH)
