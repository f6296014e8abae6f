"""Differential conformance: a corpus of statements run on the local engine and on a real Trino,
their answers compared as a client sees them (`python -m report_pipeline_tests.conformance`)."""
