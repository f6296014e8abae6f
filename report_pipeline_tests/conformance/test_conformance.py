"""Differential conformance: the corpus on the local engine and on the real Trino, compared as a
client sees them. Every divergence fails, listed one per line; so does a `local_not_supported` mark
the local engine no longer deserves. The corpus itself and the README's table are checked too."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from report_pipeline.local_trino import LocalTrino
from report_pipeline.trino_server import TrinoServer
from report_pipeline_tests.conformance.corpus import (
    CORPUS_DIR,
    DEFAULT_SESSION,
    README_BEGIN,
    README_END,
    REPO_ROOT,
    CorpusError,
    Entry,
    EntrySpec,
    corpus_files,
    differences_table,
    load_corpus,
    load_file,
    readme_table,
)
from report_pipeline_tests.conformance.harness import (
    Column,
    Divergence,
    Outcome,
    Server,
    check_entries,
    clean_up,
    differences,
    new_run_name,
    prepare,
)

MIN_ENTRIES = 300


@pytest.fixture(scope="module")
def servers(
    local_trino: LocalTrino, real_trino: TrinoServer
) -> Iterator[tuple[Server, Server, str]]:
    """Both servers with this run's schema `lake.<run>`; everything named after the run is dropped
    after."""
    local = Server("local", local_trino.host, local_trino.port)
    trino = Server("trino", real_trino.host, real_trino.port)
    run = new_run_name()
    for server in (local, trino):
        prepare(server, run)
    yield local, trino, run
    for server in (local, trino):
        clean_up(server, run)


@pytest.mark.parametrize("corpus_file", [path.stem for path in corpus_files()])
def test_local_engine_answers_as_trino(
    corpus_file: str, servers: tuple[Server, Server, str]
) -> None:
    local, trino, run = servers
    entries = load_file(CORPUS_DIR / f"{corpus_file}.yaml")
    found = check_entries(local, trino, entries, run)
    if found:
        pytest.fail(
            f"{len(found)} divergences from Trino in {corpus_file}.yaml (fix the engine, or make "
            "it refuse with NOT_SUPPORTED and mark the entry local_not_supported):\n"
            + "\n".join(str(d) for d in found),
            pytrace=False,
        )


# --- the corpus itself ----------------------------------------------------------------------------


def test_corpus_parses_and_is_large_enough() -> None:
    corpus = load_corpus()  # a CorpusError names the file and the entry index
    total = sum(len(entries) for entries in corpus.values())
    assert total >= MIN_ENTRIES, (
        f"the corpus has {total} entries; the conformance test needs at least {MIN_ENTRIES}"
    )


def test_every_report_sql_file_is_in_the_corpus() -> None:
    files = {
        entry.spec.file
        for entries in load_corpus().values()
        for entry in entries
        if entry.spec.file
    }
    report_sql = {
        str(p.relative_to(REPO_ROOT))
        for p in (REPO_ROOT / "report_pipeline" / "reports").glob("*/*.sql")
    }
    assert report_sql - files == set(), "report SQL files missing from corpus/reports.yaml"
    assert "report_pipeline/deploy/trino/bootstrap.sql" in files


def test_a_bad_entry_is_named_by_file_and_index(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("entries:\n  - sql: SELECT 1\n  - sql: SELECT 2\n    orderd: true\n")
    with pytest.raises(
        CorpusError, match=r"broken\.yaml entry 1: orderd: Extra inputs are not permitted"
    ):
        load_file(path)
    path.write_text("entries:\n  - parameters: [1]\n")
    with pytest.raises(CorpusError, match=r"broken\.yaml entry 0: .*exactly one of sql: and file:"):
        load_file(path)


def test_readme_differences_table_is_generated_from_the_corpus() -> None:
    table = readme_table()
    assert table is not None, f"README.md lacks the markers {README_BEGIN} / {README_END}"
    assert table == differences_table(load_corpus()), (
        "README.md's differences table is out of date: regenerate it with "
        "`python -m report_pipeline_tests.conformance` and paste it between the conformance markers"
    )


# --- the comparison -------------------------------------------------------------------------------


def _entry(tmp_path: Path, body: str):
    path = tmp_path / "unit.yaml"
    path.write_text(f"entries:\n  - {body}\n")
    return load_file(path)[0]


def _demo_entry(index: int, sql: str) -> Entry:
    """Entry `index` of a corpus file `demo.yaml`, for the marking tests."""
    return Entry("demo", index, EntrySpec(sql=sql), DEFAULT_SESSION, own_connection=False)


def _rows(*rows: tuple) -> Outcome:
    return Outcome((Column("x", "double", {"rawType": "double", "arguments": []}),), rows)


def test_doubles_compare_with_a_relative_tolerance_and_rows_as_a_multiset(tmp_path: Path) -> None:
    entry = _entry(tmp_path, "sql: SELECT x FROM t")
    assert (
        differences(entry, entry.spec.sql, _rows((1.0,), (2.0,)), _rows((2.0 + 1e-12,), (1.0,)))
        == []
    )
    assert differences(entry, entry.spec.sql, _rows((1.0,)), _rows((1.0001,))) != []
    assert differences(entry, entry.spec.sql, _rows((float("nan"),)), _rows((float("nan"),))) == []


def test_rows_compare_in_order_under_a_top_level_order_by(tmp_path: Path) -> None:
    entry = _entry(tmp_path, "sql: SELECT x FROM (SELECT x FROM t ORDER BY x) ORDER BY x DESC")
    assert differences(entry, entry.spec.sql, _rows((1.0,), (2.0,)), _rows((2.0,), (1.0,))) != []
    inner_only = _entry(tmp_path, "sql: SELECT x FROM (SELECT x FROM t ORDER BY x LIMIT 5)")
    assert (
        differences(inner_only, inner_only.spec.sql, _rows((1.0,), (2.0,)), _rows((2.0,), (1.0,)))
        == []
    )


def test_values_equal_in_python_but_not_to_a_client_differ(tmp_path: Path) -> None:
    entry = _entry(tmp_path, "sql: SELECT x")
    utc = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    paris = utc.astimezone(dt.timezone(dt.timedelta(hours=1)))
    assert differences(entry, "SELECT x", Outcome(rows=((utc,),)), Outcome(rows=((paris,),))) != []
    assert differences(entry, "SELECT x", Outcome(rows=((True,),)), Outcome(rows=((1,),))) != []


def test_not_supported_passes_only_where_marked(tmp_path: Path) -> None:
    refused = Outcome(error_name="NOT_SUPPORTED", error_message="Function x is not supported")
    marked = _entry(tmp_path, "sql: SELECT x()\n    local_not_supported: '`x()`'")
    assert differences(marked, "SELECT x()", refused, _rows((1.0,))) == []
    assert "stale" in differences(marked, "SELECT x()", _rows((1.0,)), _rows((1.0,)))[0]
    unmarked = _entry(tmp_path, "sql: SELECT x()")
    assert differences(unmarked, "SELECT x()", refused, _rows((1.0,))) != []


def test_marks_are_written_as_each_entrys_first_key_keeping_block_scalars_and_comments(
    tmp_path,
) -> None:
    import yaml

    from report_pipeline_tests.conformance.marking import write_marks

    (tmp_path / "demo.yaml").write_text(
        "# kept\nentries:\n  - sql: SELECT 1\n  - sql: |\n      SELECT 2\n"
        "      FROM t\n    ordered: true\n"
    )
    refused = (
        "outcome: local NOT_SUPPORTED (typeof() is not supported by the local engine) "
        "| trino 1 rows"
    )
    divergences = [
        Divergence(_demo_entry(0, "SELECT 1"), "SELECT 1", "column types: a | b"),
        Divergence(_demo_entry(1, "SELECT 2"), "SELECT 2", refused),
    ]
    assert write_marks(divergences, tmp_path) == 2
    text = (tmp_path / "demo.yaml").read_text()
    assert text.startswith("# kept\n")
    assert yaml.safe_load(text)["entries"] == [
        {"known_divergence": "column types: a | b", "sql": "SELECT 1"},
        {"local_not_supported": "typeof()", "sql": "SELECT 2\nFROM t\n", "ordered": True},
    ]


def test_a_stale_mark_is_removed_and_the_entry_keeps_its_dash(tmp_path) -> None:
    import yaml

    from report_pipeline_tests.conformance.marking import write_marks

    (tmp_path / "demo.yaml").write_text(
        'entries:\n  - local_not_supported: "x()"\n    sql: SELECT x()\n'
        '  - sql: SELECT 2\n    known_divergence: "rows"\n'
    )
    stale = [
        Divergence(_demo_entry(i, "SELECT x"), "", "stale mark: now answers as Trino")
        for i in (0, 1)
    ]
    write_marks(stale, tmp_path)
    assert yaml.safe_load((tmp_path / "demo.yaml").read_text())["entries"] == [
        {"sql": "SELECT x()"},
        {"sql": "SELECT 2"},
    ]
