"""A local Trino-compatible engine: the Trino client protocol over HTTP, SQL executed by DuckDB.

The unmodified `trino` client talks to it as to a coordinator. It is the embedded default for the
demo and the tests; deployments point the same code at a real Trino cluster.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace

from report_pipeline.local_trino.catalogs import CatalogSpec, open_database
from report_pipeline.local_trino.engine import Engine, EngineConfig
from report_pipeline.local_trino.errors import TrinoError
from report_pipeline.local_trino.faults import Fault
from report_pipeline.local_trino.sample_data import (
    DEFAULT_DAYS,
    DEFAULT_EVENTS,
    DEFAULT_START,
    load_sample_data,
)
from report_pipeline.local_trino.server import LocalTrinoServer


class LocalTrino:
    """Engine + sample data + HTTP server, started together; usable as a context manager."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        data: str | None = None,
        sample_events: int = DEFAULT_EVENTS,
        sample_start: dt.date = DEFAULT_START,
        sample_days: int = DEFAULT_DAYS,
        config: EngineConfig | None = None,
        catalog: str = "lake",
        catalogs: Sequence[CatalogSpec | str] = (),
        fault_injection: bool = False,
    ):
        """The sample data goes into `catalog` (kept in the DuckDB file `data`, if given);
        `catalogs` adds more (`memory`, say), each in memory or in a file of its own."""
        config = config or EngineConfig()
        extra = [c if isinstance(c, CatalogSpec) else CatalogSpec.parse(c) for c in catalogs]
        # fault injection is off unless asked for, here or in the config
        self._config = replace(
            config,
            catalogs=(CatalogSpec(catalog, data), *extra),
            fault_injection=fault_injection or config.fault_injection,
        )
        database = open_database(list(self._config.catalogs))
        load_sample_data(database, catalog, sample_events, sample_start, sample_days)
        self.engine = Engine(database, self._config)
        self.server = LocalTrinoServer(self.engine, host, port)

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def catalog(self) -> str:
        return self.engine.catalog

    def inject(self, fault: Fault) -> Fault:
        if not self.engine.config.fault_injection:
            raise RuntimeError(
                "fault injection is off on this engine: start it with "
                "LocalTrino(fault_injection=True) "
                "(or `report-pipeline local-trino --enable-fault-injection`)"
            )
        return self.engine.faults.add(fault)

    def start(self) -> LocalTrino:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        self.engine.close()

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop (failing every running statement, forgetting its query history) and start again on
        the same address; with a data file the tables survive, as a coordinator's catalogs would."""
        import time

        host, port = self.host, self.port
        self.stop()
        time.sleep(down_seconds)
        self.engine = Engine(open_database(list(self._config.catalogs)), self._config)
        self.server = LocalTrinoServer(self.engine, host, port).start()

    def __enter__(self) -> LocalTrino:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


__all__ = ["CatalogSpec", "EngineConfig", "Fault", "LocalTrino", "TrinoError"]
