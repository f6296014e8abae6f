"""The stack's own parsers as command-line checkers: Alloy's (github.com/grafana/alloy/syntax) for
the Alloy configuration and Loki's (github.com/grafana/loki/v3/pkg/logql/syntax) for LogQL.

Neither tool ships on PyPI or in Debian (Debian's `loki` package is an unrelated program), so each
checker is a few lines of Go (checkers/<name>/main.go) built against the pinned module versions
(checkers/<name>/go.mod and go.sum) on first use, into the cache the real Trino uses
(REPORT_PIPELINE_CACHE, else ~/.cache/report_pipeline): `go-checkers/<name>-<digest>/<name>`,
rebuilt only when the sources change. The first build fetches the modules through the Go module
proxy (about a minute for LogQL's); a second run builds nothing. A checker that cannot be built
raises CheckerUnavailable: the tests fail on it, they never skip.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from report_pipeline.trino_server.install import cache_dir

SOURCES = Path(__file__).resolve().parent / "checkers"
BUILD_TIMEOUT_SECONDS = 1200


class CheckerUnavailable(RuntimeError):
    """The checker could not be built; the message says what is missing."""


def checker(name: str) -> Path:
    """The built checker `name` (a folder of checkers/), building it if the cache lacks it."""
    source = SOURCES / name
    files = sorted(p for p in source.iterdir() if p.name in ("main.go", "go.mod", "go.sum"))
    digest = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()
    target = cache_dir() / "go-checkers" / f"{name}-{digest[:16]}"
    binary = target / name
    if binary.is_file():
        return binary
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if go is None:
        raise CheckerUnavailable(
            f"building the {name} checker needs Go (https://go.dev/dl, or apt-get install golang)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file():  # built by a concurrent session meanwhile
            return binary
        building = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}-"))
        try:
            result = subprocess.run(
                [go, "build", "-o", str(building / name), "."],
                cwd=source,
                env={
                    **os.environ,
                    # the pinned go.mod/go.sum as they are; never a toolchain download
                    "GOFLAGS": "-mod=readonly -buildvcs=false",
                    "GOTOOLCHAIN": "local",
                },
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_SECONDS,
            )
            if result.returncode != 0:
                raise CheckerUnavailable(
                    f"`go build` of the {name} checker failed:\n{result.stderr[-4000:]}"
                )
            building.rename(target)  # whole or not at all
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return binary
