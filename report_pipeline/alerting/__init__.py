"""Alerts about sagas: what to say (alerts.py) and how it reaches people (webhook.py)."""
