"""Talking to Trino: the client (progress, time limits, cancel and lookup by id), error classes,
SQL rendering."""
