"""Benchmarks: scripts that print a table and write JSON (`make bench`); not part of the test run."""
