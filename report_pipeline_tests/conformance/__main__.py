"""`python -m report_pipeline_tests.conformance` prints the README's differences table, generated
from the corpus (paste it between the conformance markers of README.md).

`python -m report_pipeline_tests.conformance --report --trino http://127.0.0.1:8080` runs the corpus
on a local engine it starts and on that Trino (which needs the sample data: `make trino`, or the
tests' server), and prints every divergence grouped by corpus file.
"""

from __future__ import annotations

import argparse
import logging
import sys
from urllib.parse import urlparse

from report_pipeline_tests.conformance.corpus import differences_table, load_corpus
from report_pipeline_tests.conformance.harness import (
    Server,
    check_entries,
    clean_up,
    new_run_name,
    prepare,
)

SAMPLE_EVENTS = 20_000  # as the tests' servers (report_pipeline_tests/conftest.py TEST_EVENTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m report_pipeline_tests.conformance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--report", action="store_true", help="run the corpus on both servers")
    parser.add_argument(
        "--trino", default="http://127.0.0.1:8080", help="the real Trino's URL (plain HTTP)"
    )
    parser.add_argument("--only", default="", help="comma-separated corpus files (stems) to run")
    parser.add_argument("--sample-events", type=int, default=SAMPLE_EVENTS)
    parser.add_argument(
        "--mark",
        action="store_true",
        help="with --report: write local_not_supported / known_divergence marks into the corpus",
    )
    args = parser.parse_args(argv)
    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # the engine's parser warns on every SHOW
    corpus = load_corpus()
    if not args.report:
        print(differences_table(corpus))
        return 0
    from report_pipeline.local_trino import LocalTrino  # only the report needs the engine

    url = urlparse(args.trino)
    trino_server = Server("trino", url.hostname or "127.0.0.1", url.port or 8080)
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    run = new_run_name()
    total = 0
    everything = []
    # as the tests start it (report_pipeline_tests/conftest.py): the `memory` catalog beside `lake`
    with LocalTrino(sample_events=args.sample_events, catalogs=["memory"]) as engine:
        local = Server("local", engine.host, engine.port)
        for server in (local, trino_server):
            prepare(server, run)
        try:
            for name, entries in corpus.items():
                if only and name not in only:
                    continue
                found = check_entries(local, trino_server, entries, run)
                total += len(found)
                everything += found
                print(
                    f"== {name}.yaml: {len(entries)} entries, {len(found)} divergences", flush=True
                )
                for divergence in found:
                    print(f"  {divergence}", flush=True)
        finally:
            for server in (local, trino_server):
                for problem in clean_up(server, run):
                    print(f"clean-up: {problem}", file=sys.stderr)
    print(f"{total} divergences")
    if args.mark:
        from report_pipeline_tests.conformance.marking import write_marks

        print(f"marked {write_marks(everything)} entries; review the corpus diff")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
