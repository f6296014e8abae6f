"""`make bench`: every benchmark, side by side in one run."""

from __future__ import annotations

import argparse

from report_pipeline_tests.benchmarks import engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000, help="sample events (default 10M)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per measurement (median is reported)")
    parser.add_argument("--fetch-rows", type=int, default=1_000_000)
    parser.add_argument("--output", default="bench-results", help="folder for the JSON results")
    args = parser.parse_args()
    engine.main(args.events, args.repeats, args.fetch_rows, args.output)


if __name__ == "__main__":
    main()
