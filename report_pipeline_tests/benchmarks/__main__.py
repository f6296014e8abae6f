"""`make bench`: every benchmark, side by side in one run; a table on stdout, JSON in
bench-results/."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
from pathlib import Path

from tabulate import tabulate

from report_pipeline_tests.benchmarks import engine, metrics_scrape, orchestration

GROUPS = {"orchestration": "B1-B5, B7", "engine": "B6", "metrics": "B8"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--events", type=int, default=10_000_000, help="sample events for B6 (default 10M)"
    )
    parser.add_argument(
        "--report-events",
        type=int,
        default=1_000_000,
        help="sample events the report runs over in B1-B5 (default 1M)",
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="runs per measurement (median is reported)"
    )
    parser.add_argument(
        "--load-runs", type=int, default=50, help="runs submitted at once in B5 (default 50)"
    )
    parser.add_argument("--fetch-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--trino-events",
        type=int,
        default=1_000_000,
        help="sample events for B6c, the local engine vs a real Trino (default 1M)",
    )
    parser.add_argument(
        "--ledger-attempts",
        type=int,
        default=1_000_000,
        help="step attempts in B8's generated ledger (default 1M)",
    )
    parser.add_argument(
        "--ledger-sagas", type=int, default=100_000, help="sagas in B8's ledger (default 100k)"
    )
    parser.add_argument(
        "--only",
        choices=GROUPS,
        action="append",
        help="run only these benchmarks (repeatable): "
        + ", ".join(f"{name} ({ids})" for name, ids in GROUPS.items()),
    )
    parser.add_argument("--output", default="bench-results", help="folder for the JSON results")
    args = parser.parse_args()
    only = set(args.only or GROUPS)

    rows, results = (
        orchestration.main(args.repeats, args.load_runs, args.report_events)
        if "orchestration" in only
        else ([], {})
    )
    if "engine" in only:
        print(f"B6: the local engine vs DuckDB, {args.events:,} events ...", flush=True)
        engine_rows, results["b6"] = engine.main(args.events, args.repeats, args.fetch_rows)
        rows += engine_rows
        trino_rows, results["b6c"] = engine.real_trino(args.trino_events, args.repeats)
        rows += trino_rows
    if "metrics" in only:
        metrics_rows, results["b8"] = metrics_scrape.main(args.ledger_sagas, args.ledger_attempts)
        rows += metrics_rows

    print()
    print(
        tabulate(rows, headers=["benchmark", "measured", "baseline", "ratio", "detail", "goal", ""])
    )
    print(
        f"\nmedians of {args.repeats} runs; machine: {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    output = Path(args.output)
    output.mkdir(exist_ok=True)
    results["meta"] = {
        "when": dt.datetime.now(dt.UTC).isoformat(),
        "cores": os.cpu_count(),
        "repeats": args.repeats,
        "report_events": args.report_events,
        "table": rows,
    }
    # a partial run keeps the full run's file
    path = output / (
        "bench.json" if only == set(GROUPS) else f"bench-{'-'.join(sorted(only))}.json"
    )
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
