"""The `report-pipeline` command."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import re
import signal
import sys
import threading

from report_pipeline.local_trino.sample_data import DEFAULT_EVENTS


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date (YYYY-MM-DD): {text!r}") from None


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _catalog(text: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", text) or text in ("system", "memory", "temp", "main"):
        raise argparse.ArgumentTypeError(f"not a usable catalog name: {text!r}")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="report-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    engine = commands.add_parser("local-trino", help="serve the local Trino-compatible engine over HTTP")
    engine.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    engine.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    engine.add_argument("--data", help="DuckDB file holding the catalog (default: in memory)")
    engine.add_argument("--catalog", type=_catalog, default="lake", help="catalog name (default: lake)")
    engine.add_argument("--sample-rows", type=_non_negative, default=DEFAULT_EVENTS,
                        help=f"sample events to generate if the tables are missing (default: {DEFAULT_EVENTS})")

    demo = commands.add_parser("demo", help="run the daily country report on the embedded engine")
    demo.add_argument("--start-date", type=_date, default=dt.date(2026, 1, 1))
    demo.add_argument("--end-date", type=_date, default=dt.date(2026, 1, 31))
    demo.add_argument("--min-events", type=_non_negative, default=5)
    return parser


def _serve_local_trino(args: argparse.Namespace) -> None:
    from report_pipeline.local_trino import LocalTrino

    engine = LocalTrino(host=args.host, port=args.port, data=args.data, sample_events=args.sample_rows,
                        catalog=args.catalog)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with engine:
        print(f"local Trino-compatible engine listening on {engine.url} (catalog {engine.catalog})", flush=True)
        stop.wait()
    print("local engine stopped", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "local-trino":
        _serve_local_trino(args)
    elif args.command == "demo":
        from report_pipeline import demo

        if args.start_date > args.end_date:
            sys.exit("error: --start-date must not be after --end-date")
        demo.main(args.start_date, args.end_date, args.min_events)


if __name__ == "__main__":
    main()
