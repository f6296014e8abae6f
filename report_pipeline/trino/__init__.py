"""Talking to Trino (or the local engine): statement rendering and, later, the Dagster resource."""
