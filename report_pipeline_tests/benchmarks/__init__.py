"""Benchmarks: scripts that print a table and write JSON (`make bench`); not in the test run."""
