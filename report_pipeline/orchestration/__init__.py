"""Dagster wiring only: resources, the job factory, the compensation hook. No saga rules here."""
