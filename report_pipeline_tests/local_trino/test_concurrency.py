"""Many statements at once from several clients; a slow statement never blocks the others."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import requests

from report_pipeline.local_trino import Fault
from report_pipeline_tests.conftest import wait_until


def test_quick_statements_finish_while_a_slow_one_runs(local_trino, connect) -> None:
    local_trino.inject(Fault(pattern="slow_neighbour", action="stall", seconds=4))
    slow_cursor = connect().cursor()
    with ThreadPoolExecutor(9) as pool:
        slow = pool.submit(
            lambda: slow_cursor.execute("SELECT 'slow_neighbour'") and slow_cursor.fetchall()
        )
        wait_until(
            lambda: any(
                "slow_neighbour" in q.sql and q.state.value == "RUNNING"
                for q in local_trino.engine.queries()
            )
        )
        started = time.monotonic()

        def quick(i: int) -> list:
            cursor = connect().cursor()
            cursor.execute("SELECT count(*) + ? FROM events", [i])
            return cursor.fetchall()

        results = list(pool.map(quick, range(8)))
        quick_seconds = time.monotonic() - started
        assert not slow.done()
        assert slow.result(timeout=10) == [["slow_neighbour"]]
    assert quick_seconds < 3
    base = results[0][0][0]
    assert [r[0][0] for r in results] == [base + i for i in range(8)]


def test_engine_counts_concurrent_statements(local_trino, connect) -> None:
    local_trino.inject(Fault(pattern="parallel_probe", action="stall", seconds=1, times=4))

    def run(_: int) -> list:
        cursor = connect().cursor()
        cursor.execute("SELECT 'parallel_probe'")
        return cursor.fetchall()

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(run, range(4))) == [[["parallel_probe"]]] * 4
    stats = requests.get(f"{local_trino.url}/v1/local/stats", timeout=10).json()
    assert stats["peak_running"] >= 4
