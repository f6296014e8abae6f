"""The `report-pipeline` command."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import signal
import sys
import threading

from report_pipeline import settings
from report_pipeline.observability.logging import configure_logging


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


def _catalog(text: str):
    from report_pipeline.local_trino.catalogs import CatalogSpec

    try:
        return CatalogSpec.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _saga_state(text: str) -> str:
    from report_pipeline.saga import SagaState

    if text.upper() not in SagaState.__members__:
        raise argparse.ArgumentTypeError(f"one of {', '.join(SagaState.__members__)}")
    return text.upper()


def _ledger():
    """The saga ledger named by REPORT_PIPELINE_LEDGER_URL (the URL is a secret: never printed)."""
    import sqlalchemy as sa

    from report_pipeline.saga.ledger import SqlLedger

    url, name = settings.LEDGER_URL.read(), settings.LEDGER_URL.name
    if not url:
        sys.exit(f"error: set {name} to the saga ledger's database URL")
    try:
        return SqlLedger(url)
    except sa.exc.ArgumentError:  # its message quotes the URL, password and all
        sys.exit(
            f"error: {name} is not a database URL SQLAlchemy can use, e.g. "
            "postgresql+psycopg2://user:password@host:5432/database"
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="report-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    engine = commands.add_parser(
        "local-trino", help="serve the local Trino-compatible engine over HTTP"
    )
    engine.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    engine.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    engine.add_argument("--data", help="DuckDB file holding the first catalog (default: in memory)")
    engine.add_argument(
        "--catalog",
        type=_catalog,
        action="append",
        metavar="NAME[=FILE]",
        help="a catalog, in memory or in a DuckDB file; repeatable, the first gets the sample "
        "data (default: lake; `memory` behaves as Trino's memory connector)",
    )
    engine.add_argument(
        "--sample-rows",
        type=_non_negative,
        help="sample events to generate if the tables are missing (default: the engine's sample)",
    )
    engine.add_argument(
        "--enable-fault-injection",
        action="store_true",
        help="serve the fault API (/v1/local/faults) for tests and demos (default: off)",
    )

    server = commands.add_parser(
        "trino-server", help="run a real single-node Trino (fetched and cached on first use)"
    )
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    server.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    server.add_argument(
        "--sample-rows",
        type=_non_negative,
        help="sample events to load if the tables are missing (default: the engine's sample)",
    )
    server.add_argument(
        "--data-dir",
        default=".trino-server",
        help="config, logs and Iceberg files (default: .trino-server)",
    )
    server.add_argument(
        "--database-prefix",
        default="report_pipeline",
        help="PostgreSQL databases <prefix>_lake and <prefix>_iceberg hold the catalogs",
    )

    reports = commands.add_parser("reports", help="work with report definitions")
    report_commands = reports.add_subparsers(dest="reports_command", required=True)
    validate = report_commands.add_parser(
        "validate", help="check every report spec and its SQL files"
    )
    validate.add_argument("--dir", help="reports folder (default: the packaged reports)")
    report_commands.add_parser(
        "schema", help="print the JSON Schema of report.yaml (for editors' YAML checking)"
    )

    dev = commands.add_parser(
        "dev", help="the Dagster UI and daemon on the local engine and local PostgreSQL"
    )
    dev.add_argument("--ui-port", type=int, default=3000)
    dev.add_argument("--trino-port", type=int, default=8080)
    dev.add_argument(
        "--database", default="report_pipeline_dev", help="PostgreSQL database (created if missing)"
    )

    dev.add_argument(
        "--pgbouncer-port",
        type=int,
        default=6433,
        help="port of the PgBouncer Dagster's storage goes through",
    )

    pgbouncer = commands.add_parser(
        "pgbouncer",
        help="run PgBouncer in the foreground in front of the PG* server (the compose service)",
    )
    pgbouncer.add_argument("--listen-host", default="127.0.0.1")
    pgbouncer.add_argument("--listen-port", type=int, default=6432)

    metrics = commands.add_parser(
        "metrics", help="serve Prometheus metrics computed from the saga ledger"
    )
    metrics.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    metrics.add_argument("--port", type=int, default=9108, help="port (default: 9108)")
    metrics.add_argument(
        "--stuck-after",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="a live saga with no sign of life for this long counts as stuck (default: "
        f"{settings.STUCK_AFTER_SECONDS.name} or {settings.STUCK_AFTER_SECONDS.default})",
    )

    status = commands.add_parser(
        "status", help="the recent sagas, or one saga's steps, progress and compensations"
    )
    status.add_argument(
        "saga_id", nargs="?", help="a saga id (the root run id); omit for the recent sagas"
    )
    status.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="redraw every --interval seconds; with a saga id, until it reaches an end state",
    )
    status.add_argument(
        "--interval", type=_positive_seconds, default=1.0, help="seconds between redraws"
    )
    status.add_argument("--limit", type=int, default=20, help="how many recent sagas (default: 20)")
    status.add_argument(
        "--state", action="append", type=_saga_state, help="only sagas in this state (repeatable)"
    )

    demo = commands.add_parser("demo", help="run the daily country report on the embedded engine")
    demo.add_argument("--start-date", type=_date, default=dt.date(2026, 1, 1))
    demo.add_argument("--end-date", type=_date, default=dt.date(2026, 1, 31))
    demo.add_argument("--min-events", type=_non_negative, default=5)
    return parser


def _sample_rows(args: argparse.Namespace) -> int:
    # resolved here, not as the parser's default: `metrics` and `status` must not load the engine
    # (DuckDB)
    from report_pipeline.local_trino.sample_data import DEFAULT_EVENTS

    return DEFAULT_EVENTS if args.sample_rows is None else args.sample_rows


def _serve_local_trino(args: argparse.Namespace) -> None:
    from report_pipeline.local_trino import LocalTrino
    from report_pipeline.local_trino.catalogs import CatalogSpec

    first, *more = args.catalog or [CatalogSpec("lake")]
    if len({c.name for c in (first, *more)}) != len(more) + 1:
        raise SystemExit("error: each --catalog needs its own name")
    engine = LocalTrino(
        host=args.host,
        port=args.port,
        data=first.path or args.data,
        sample_events=_sample_rows(args),
        catalog=first.name,
        catalogs=more,
        fault_injection=args.enable_fault_injection,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with engine:
        names = ", ".join(engine.engine.catalogs.names)
        print(
            f"local Trino-compatible engine listening on {engine.url} (catalogs {names})",
            flush=True,
        )
        stop.wait()
    print("local engine stopped", flush=True)


def _serve_trino_server(args: argparse.Namespace) -> int:
    from pathlib import Path

    from report_pipeline.postgres import PostgresSettings
    from report_pipeline.trino_server import (
        InstallError,
        TrinoServer,
        TrinoServerError,
        ensure_installed,
    )

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        installation = ensure_installed(log=lambda line: print(line, flush=True))
        server = TrinoServer(
            installation,
            Path(args.data_dir),
            PostgresSettings.from_env(),
            host=args.host,
            port=args.port,
            lake_database=f"{args.database_prefix}_lake",
            iceberg_database=f"{args.database_prefix}_iceberg",
            sample_events=_sample_rows(args),
        )
        print(f"starting Trino {installation.version} (log: {server.log_file})", flush=True)
        server.start()
    except (InstallError, TrinoServerError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"Trino {installation.version} listening on {server.url} (catalogs lake, iceberg, memory; "
        f"started in {server.startup_seconds:.1f}s)",
        flush=True,
    )
    try:
        while not stop.wait(1.0):
            if server.wait_for_exit(0) is not None:
                print(f"error: Trino exited; see {server.log_file}", file=sys.stderr)
                return 1
    finally:
        server.stop()
    print("Trino stopped", flush=True)
    return 0


def _serve_metrics(args: argparse.Namespace) -> None:
    from report_pipeline.observability.metrics import serve_metrics

    stuck_after = args.stuck_after or settings.STUCK_AFTER_SECONDS.value()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(
        f"serving saga metrics on http://{args.host}:{args.port}/metrics "
        f"(stuck after {stuck_after:.0f}s)",
        flush=True,
    )
    serve_metrics(_ledger(), args.host, args.port, stuck_after, stop)


def _validate_reports(directory: str | None) -> int:
    from pathlib import Path

    from report_pipeline.reporting import REPORTS_DIR, ReportSpecError, load_report
    from report_pipeline.reporting.spec import SPEC_FILE

    root = Path(directory) if directory else REPORTS_DIR
    folders = sorted(p for p in root.iterdir() if (p / SPEC_FILE).is_file())
    if not folders:
        print(f"no reports (folders with {SPEC_FILE}) under {root}", file=sys.stderr)
        return 1
    failures = 0
    for folder in folders:
        try:
            spec = load_report(folder)
        except ReportSpecError as error:
            failures += 1
            print(f"FAIL {folder.name}: {error}")
            continue
        files = sum(
            len(s.action) + len(s.compensation) + bool(s.preview) for s in spec.steps.values()
        )
        order = " -> ".join(spec.saga_definition().order())
        print(
            f"ok   {spec.name}: {len(spec.steps)} steps ({order}), "
            f"{files} SQL files, parameters {', '.join(spec.parameters)}"
        )
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    # This process's logging, for every command: stdlib lines (the exporter, the local engine) and
    # structlog's (the saga code the demo and dev run).
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        configure_logging()
        _run(args)
    except settings.SettingError as error:
        sys.exit(f"error: {error}")


def _run(args: argparse.Namespace) -> None:
    if args.command == "local-trino":
        _serve_local_trino(args)
    elif args.command == "trino-server":
        sys.exit(_serve_trino_server(args))
    elif args.command == "dev":
        from report_pipeline.dev import run_dev

        sys.exit(run_dev(args.ui_port, args.trino_port, args.database, args.pgbouncer_port))
    elif args.command == "pgbouncer":
        from report_pipeline.pgbouncer import PgBouncerError, exec_pgbouncer
        from report_pipeline.postgres import PostgresSettings

        try:
            exec_pgbouncer(PostgresSettings.from_env(), args.listen_host, args.listen_port)
        except PgBouncerError as error:
            sys.exit(f"error: {error}")
    elif args.command == "reports":
        if args.reports_command == "schema":
            import json

            from report_pipeline.reporting.spec import report_yaml_schema

            print(json.dumps(report_yaml_schema(), indent=2))
        else:
            sys.exit(_validate_reports(args.dir))
    elif args.command == "metrics":
        _serve_metrics(args)
    elif args.command == "status":
        from report_pipeline.observability.status import show_status

        sys.exit(
            show_status(
                _ledger(),
                args.saga_id,
                follow=args.follow,
                interval=args.interval,
                limit=args.limit,
                states=args.state,
            )
        )
    elif args.command == "demo":
        from report_pipeline import demo

        if args.start_date > args.end_date:
            sys.exit("error: --start-date must not be after --end-date")
        demo.main(args.start_date, args.end_date, args.min_events)


if __name__ == "__main__":  # python -m report_pipeline.cli
    main()
