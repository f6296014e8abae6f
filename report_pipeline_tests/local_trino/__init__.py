"""Tests of the local engine, driven only through the real `trino` client or raw HTTP."""

# Runs for minutes on DuckDB unless stopped: for cancellation, kill and timeout tests.
ENDLESS_QUERY = "SELECT sum(hash(a.range * b.range) % 7) FROM range(100000) a CROSS JOIN range(100000) b"
