"""`make bench`: every benchmark, side by side in one run; a table on stdout, JSON in bench-results/."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
from pathlib import Path

from tabulate import tabulate

from report_pipeline_tests.benchmarks import engine, orchestration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000, help="sample events for B6 (default 10M)")
    parser.add_argument("--report-events", type=int, default=1_000_000,
                        help="sample events the report runs over in B1-B5 (default 1M)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per measurement (median is reported)")
    parser.add_argument("--load-runs", type=int, default=50, help="runs submitted at once in B5 (default 50)")
    parser.add_argument("--fetch-rows", type=int, default=1_000_000)
    parser.add_argument("--trino-events", type=int, default=1_000_000,
                        help="sample events for B6c, the local engine vs a real Trino (default 1M)")
    parser.add_argument("--output", default="bench-results", help="folder for the JSON results")
    args = parser.parse_args()

    rows, results = orchestration.main(args.repeats, args.load_runs, args.report_events)
    print(f"B6: the local engine vs DuckDB, {args.events:,} events ...", flush=True)
    engine_rows, results["b6"] = engine.main(args.events, args.repeats, args.fetch_rows)
    rows += engine_rows
    trino_rows, results["b6c"] = engine.real_trino(args.trino_events, args.repeats)
    rows += trino_rows

    print()
    print(tabulate(rows, headers=["benchmark", "measured", "baseline", "ratio", "detail", "goal", ""]))
    print(f"\nmedians of {args.repeats} runs; machine: {os.cpu_count()} cores, Python {platform.python_version()}")
    output = Path(args.output)
    output.mkdir(exist_ok=True)
    results["meta"] = {"when": dt.datetime.now(dt.timezone.utc).isoformat(), "cores": os.cpu_count(),
                       "repeats": args.repeats, "report_events": args.report_events, "table": rows}
    (output / "bench.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"results written to {output / 'bench.json'}")


if __name__ == "__main__":
    main()
