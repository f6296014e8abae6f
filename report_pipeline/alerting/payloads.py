"""An alert as a message: a Slack incoming-webhook message, or plain JSON."""

from __future__ import annotations

from typing import Any

from report_pipeline.alerting.alerts import Alert, AlertLinks, Severity

# Slack's limits on a section's text and on one of its fields (a longer one gets the message
# refused), less room for our own formatting around the value
_SECTION_CHARS, _FIELD_CHARS = 3000 - 40, 2000 - 40
# Slack's escaping for message text: with these three escaped, nothing from a saga (parameters,
# errors, names) can become a mention (<!channel>, <@U123>) or a link (<http://evil|click>) in the
# channel.
_SLACK_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# An alert's links as Slack shows them, in this order
_LINK_LABELS = {
    "run": "Run",
    "compensation_run": "Compensation run",
    "dashboard": "Dashboard",
    "logs": "Logs",
}


def slack_payload(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook message: a summary line, the facts as fields, the links, a button
    to the run.

    Every value from the saga is escaped for mrkdwn; only the formatting around it is ours. The
    links are ours too, every saga value in them percent-encoded (observability/links.py): none can
    end a link early or add one.
    """
    icon = ":rotating_light:" if alert.severity == Severity.CRITICAL else ":warning:"
    title = _slack_text(alert.title, _SECTION_CHARS)
    facts = [
        ("Report", alert.report),
        ("Saga", alert.saga_id or "-"),
        ("State", alert.saga_state or "-"),
        ("Trigger", alert.trigger or "-"),
        ("Partition", alert.partition or "-"),
        ("Failed step", alert.failed_step or "-"),
        ("Interrupted steps", ", ".join(alert.interrupted_steps) or "-"),
        ("Parameters", str(alert.parameters)),
        ("Compensation", alert.compensation or "-"),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{title}*"}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{k}*\n{_slack_text(v, _FIELD_CHARS)}"}
                for k, v in facts
            ],
        },
    ]
    if alert.error:
        error = _slack_text(alert.error, _SECTION_CHARS)
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Error*\n```{error}```"}}
        )
    if links := slack_links(alert.links):
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Links*\n{links}"}})
    if alert.links.run:
        # a button's url is a plain URL, not mrkdwn: it cannot mention anyone and is left as it is
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open the run"},
                        "url": alert.links.run,
                    }
                ],
            }
        )
    return {
        "text": f"{icon} {title} (saga {_slack_text(alert.saga_id or '-', _FIELD_CHARS)})",
        "blocks": blocks,
    }


def slack_links(alert_links: AlertLinks) -> str:
    """The links that exist, as mrkdwn links (`<url|label>`). Slack reads `&`, `<` and `>` in a
    link's URL escaped, like everywhere else in mrkdwn."""
    return " · ".join(
        f"<{''.join(_SLACK_ESCAPES.get(char, char) for char in url)}|{label}>"
        for name, label in _LINK_LABELS.items()
        if (url := getattr(alert_links, name))
    )


def _slack_text(value: str, limit: int) -> str:
    """`value` escaped for Slack mrkdwn, cut to `limit` characters without splitting an escape."""
    escaped, size = [], 0
    for char in value:
        piece = _SLACK_ESCAPES.get(char, char)
        size += len(piece)
        if size > limit:
            break
        escaped.append(piece)
    return "".join(escaped)


def json_payload(alert: Alert) -> dict[str, Any]:
    return {"type": "report_pipeline.alert", **alert.to_json()}


FORMATS = {"slack": slack_payload, "json": json_payload}
