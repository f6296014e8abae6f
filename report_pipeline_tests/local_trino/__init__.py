"""Tests of the local engine, driven only through the real `trino` client or raw HTTP."""

# Runs for minutes on DuckDB unless stopped: for cancellation, kill and timeout tests.
ENDLESS_QUERY = ("SELECT sum((a.sequential_number * b.sequential_number) % 7) "
                 "FROM TABLE(sequence(1, 100000)) a CROSS JOIN TABLE(sequence(1, 100000)) b")
