"""What an undo (compensation) statement may do, decided on its parsed SQL (Trino dialect), so
comments, spacing and quoting play no part.

A compensation is exactly one statement, either
- `DROP TABLE IF EXISTS ${table}`: one scratch table its step creates (listed in `creates`), or
- `DELETE FROM <target> WHERE ...`: a table its step's action INSERTs INTO, with
  `saga_id = :saga_id` (the column against the bound saga id) as a top-level conjunct of the WHERE.

The spec loader checks each file with its `:name` parameters still named; the runner checks the
rendered statement again (`guard_rendered`) before it reaches Trino, against the scratch tables the
ledger recorded for the saga.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlglot import exp

from report_pipeline.saga.errors import PermanentStepError
from report_pipeline.trino.sql import QualifiedName, SqlRenderError, parse_statement

TableKey = tuple[str, str, str]  # catalog, schema, table; lower-case ('' for a part not written)

RULE = "a compensation is DROP TABLE IF EXISTS ${table} or DELETE ... WHERE saga_id = :saga_id"
_PLAIN_TABLE = {"this", "db", "catalog"}  # a table name alone: no alias, sample, version, join...


class UndoKind(StrEnum):
    DROP_TABLE = "DROP TABLE"
    DELETE = "DELETE"


@dataclass(frozen=True)
class UndoTarget:
    """What an allowed undo statement does, and to which table (catalog.schema.table)."""

    kind: UndoKind
    table: str


class RefusedCompensation(PermanentStepError):
    """A rendered undo statement that could touch what this saga did not create: never sent.

    Not transient: the same statement would be refused again, so the saga needs a person."""


def key_of(name: QualifiedName) -> TableKey:
    return (name.catalog, name.schema, name.table)


def table_key(table: exp.Expr | None) -> TableKey | None:
    """A plain table reference as a comparable key (Trino folds identifiers to lower case)."""
    if not isinstance(table, exp.Table) or any(
        v for k, v in table.args.items() if k not in _PLAIN_TABLE
    ):
        return None
    catalog, schema, name = (table.args.get(part) for part in ("catalog", "db", "this"))
    if not isinstance(name, exp.Identifier) or not all(
        p is None or isinstance(p, exp.Identifier) for p in (catalog, schema)
    ):
        return None
    return (
        catalog.name.lower() if catalog else "",
        schema.name.lower() if schema else "",
        name.name.lower(),
    )


def insert_targets(statements: Iterable[exp.Expr]) -> set[TableKey]:
    """The step's targets: the tables its action statements INSERT INTO (the only rows a DELETE
    may undo)."""
    return _written(statements, exp.Insert)


def created_tables(statements: Iterable[exp.Expr]) -> set[TableKey]:
    """The tables the statements CREATE (what a step's `creates` must name)."""
    return _written(
        (t for t in statements if str(t.args.get("kind") or "").upper() == "TABLE"), exp.Create
    )


def _written(statements: Iterable[exp.Expr], kind: type[exp.Expr]) -> set[TableKey]:
    targets = (
        tree.this.this if isinstance(tree.this, exp.Schema) else tree.this  # a column list or not
        for tree in statements
        if isinstance(tree, kind)
    )
    return {key for key in map(table_key, targets) if key is not None}


def dropped_table(tree: exp.Expr) -> TableKey | None:
    if isinstance(tree, exp.Drop) and len(tree.args.get("tables") or []) == 1:
        return table_key(tree.args["tables"][0])
    return None


def compensation_problem(
    tree: exp.Expr,
    *,
    droppable: Collection[TableKey],
    targets: Collection[TableKey],
    binds_saga_id: Callable[[exp.Expr], bool],
) -> str | None:
    """Why `tree` is not an allowed undo, or None. `binds_saga_id` says whether a node is the saga
    id's parameter (`:saga_id` in a spec's file, the `?` bound to it once rendered)."""
    if isinstance(tree, exp.Drop):
        return _drop_problem(tree, droppable)
    if isinstance(tree, exp.Delete):
        return _delete_problem(tree, targets, binds_saga_id)
    return f"{RULE}, not {tree.key.upper()}"


def _drop_problem(tree: exp.Drop, droppable: Collection[TableKey]) -> str | None:
    kind = str(tree.args.get("kind") or "").upper()
    if kind != "TABLE":
        return f"it drops a {kind or 'non-table'}: {RULE}"
    if not tree.args.get("exists"):
        return "it must be DROP TABLE IF EXISTS (an undo must be idempotent)"
    if len(tree.args.get("tables") or []) != 1:
        return "it must drop exactly one table"
    extra = _extra_clauses(tree, "kind", "exists", "tables")
    if extra:
        return f"it must be a plain DROP TABLE IF EXISTS, without {extra}"
    if dropped_table(tree) not in droppable:
        return "it may only drop a ${table} scratch table its step creates"
    return None


def _extra_clauses(tree: exp.Expr, *allowed: str) -> str:
    """The clauses set beyond `allowed`, by name (CASCADE, WITH, USING, ...): none may widen an
    undo."""
    return ", ".join(
        sorted(k.rstrip("_").upper() for k, v in tree.args.items() if v and k not in allowed)
    )


def _delete_problem(
    tree: exp.Delete, targets: Collection[TableKey], binds_saga_id: Callable[[exp.Expr], bool]
) -> str | None:
    extra = _extra_clauses(tree, "this", "where")
    if extra:
        return f"it must be a plain DELETE FROM ... WHERE, without {extra}"
    if not targets:
        return "it deletes rows, but its step's action INSERTs INTO no table"
    if table_key(tree.this) not in targets:
        return "it may only delete from a table its step's action INSERTs INTO"
    where = tree.args.get("where")
    if where is None or not any(_is_saga_key(c, binds_saga_id) for c in _conjuncts(where.this)):
        return (
            "it must delete only this saga's rows: "
            "WHERE saga_id = :saga_id, ANDed with any other condition"
        )
    return None


def _conjuncts(condition: exp.Expr) -> list[exp.Expr]:
    """The top-level AND-ed conditions (through parentheses); an OR is one condition. Iterative:
    a long generated chain of ANDs must not exhaust the stack."""
    stack, found = [condition], []
    while stack:
        node = stack.pop().unnest()
        if isinstance(node, exp.And):
            stack += [node.expression, node.this]
        else:
            found.append(node)
    return found


def _is_saga_key(condition: exp.Expr, binds_saga_id: Callable[[exp.Expr], bool]) -> bool:
    """`saga_id = :saga_id` (either way round, in parentheses or not): a column, not a tautology."""
    condition = condition.unnest()
    if not isinstance(condition, exp.EQ):
        return False
    for column, value in (
        (condition.this, condition.expression),
        (condition.expression, condition.this),
    ):
        if (
            isinstance(column, exp.Column)
            and not column.table
            and column.name.lower() == "saga_id"
            and isinstance(column.this, exp.Identifier)
            and binds_saga_id(value)
        ):
            return True
    return False


def guard_rendered(
    sql: str,
    *,
    where: str,
    scratch: Iterable[QualifiedName],
    recorded: Collection[str],
    targets: Collection[TableKey],
) -> UndoTarget | None:
    """What a rendered undo statement of one step does, or None when it must not be sent: it drops
    a scratch table of the step the ledger never recorded (never created, so nothing to undo).
    RefusedCompensation for anything but a drop of a recorded scratch table of the step or a delete
    of this saga's rows."""
    try:
        tree = parse_statement(sql)
    except SqlRenderError as error:
        raise RefusedCompensation(f"{where}: undo statement refused: it {error}") from None
    own = {key_of(name): str(name) in recorded for name in scratch}
    # the file was checked at load to bind :saga_id here; rendered, that is a positional `?`
    problem = compensation_problem(
        tree,
        droppable=own,
        targets=targets,
        binds_saga_id=lambda node: isinstance(node, exp.Placeholder) and not node.this,
    )
    if problem:
        raise RefusedCompensation(f"{where}: undo statement refused: {problem}")
    dropped = dropped_table(tree)
    if dropped is not None:
        return UndoTarget(UndoKind.DROP_TABLE, _dotted(dropped)) if own[dropped] else None
    assert isinstance(tree, exp.Delete)  # compensation_problem allows nothing else
    return UndoTarget(UndoKind.DELETE, _dotted(table_key(tree.this)))


def _dotted(key: TableKey | None) -> str:
    return ".".join(part for part in key or () if part)
