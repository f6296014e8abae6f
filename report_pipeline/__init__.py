"""report_pipeline: long, multi-step Trino reports run as compensating sagas on Dagster."""
