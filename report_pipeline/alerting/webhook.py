"""Posting an alert to a webhook; the caller retries with backoff and records every attempt."""

from __future__ import annotations

import requests

from report_pipeline.alerting.alerts import Alert, json_payload, slack_payload

FORMATS = {"slack": slack_payload, "json": json_payload}


class DeliveryError(Exception):
    """The webhook did not accept the alert (connection failure or a non-2xx answer)."""


def post_alert(url: str, alert: Alert, fmt: str = "slack", timeout_seconds: float = 10.0) -> None:
    try:
        response = requests.post(url, json=FORMATS[fmt](alert), timeout=timeout_seconds)
    except requests.RequestException as error:
        # the exception text can contain the URL, which is a secret: name only the failure
        raise DeliveryError(f"webhook unreachable ({type(error).__name__})") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"webhook answered HTTP {response.status_code}")
