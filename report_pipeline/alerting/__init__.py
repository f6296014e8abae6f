"""Alerts about sagas, with no Dagster in them (the sensor is orchestration/alerting.py).

- alerts.py: the alert model (one alert per saga outcome, its kinds and severities)
- payloads.py: an alert as a Slack message or plain JSON
- outbox.py: the outbox in the ledger's database (each alert queued once, then settled)
- delivery.py: which alerts are owed, and posting the due ones with retries
- webhook.py: one bounded post to the webhook
"""
