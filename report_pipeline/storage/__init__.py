"""The ledger database that every store shares: the saga ledger (saga/ledger.py), the sweeper's
records (orchestration/sweeper_records.py), the alert outbox (alerting/outbox.py) and the metric
totals (observability/metrics.py).

`schema.py` holds every table, the ordered migrations and `migrate()` (applied once, for all
stores); `engine.py` opens the database with timeouts and describes a failure to reach it;
`datetimes.py` reads moments back as UTC.
"""
