"""Webhook delivery against real HTTP servers on loopback: no redirects, a deadline, a bounded
answer; and Slack text that no saga value can turn into a mention or a link."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from report_pipeline.alerting.alerts import Alert, AlertLinks, run_failure_alert
from report_pipeline.alerting.payloads import slack_payload
from report_pipeline.alerting.webhook import DeliveryError, post_alert
from report_pipeline_tests.orchestration.receiver import Receiver

DEADLINE = 1.0  # seconds; short so the slow-receiver tests are quick
MARGIN = 3.0  # generous: the deadline's timer, not the machine's load, is under test
DRIP_INTERVAL = (
    0.05  # far below DEADLINE, so no single read ever times out: only the deadline can end it
)
HOSTILE = "<!channel> <@U1> & <http://evil.example|click>"


def alert(**changes) -> Alert:
    base = run_failure_alert(
        "daily_country_report",
        "run-1",
        "FAILURE",
        "PERMISSION_DENIED: no",
        AlertLinks(run="http://127.0.0.1:3000/runs/run-1"),
        {"country": "DE"},
        "manual",
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def endpoints() -> Iterator[Callable[..., Receiver]]:
    """Starts receivers for one test and stops them after it."""
    started: list[Receiver] = []

    def start(**kwargs) -> Receiver:
        started.append(Receiver(**kwargs))
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()


def redirect_to(status: int, location: str) -> Callable[[BaseHTTPRequestHandler], None]:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


def drip(handler: BaseHTTPRequestHandler, data: bytes) -> None:
    """Writes `data` a byte at a time until the client hangs up (or 30 s, so no thread outlives the
    run)."""
    until = time.monotonic() + 30
    try:
        for byte in data:
            if time.monotonic() > until:
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(DRIP_INTERVAL)  # the pace is the point: a receiver this slow
    except OSError:
        pass


def drip_headers(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
    drip(handler, b"X-Slow: " + b"a" * 10_000)


def drip_body(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "10000")
    handler.end_headers()
    drip(handler, b"a" * 10_000)


class HugeAnswer:
    """A 200 whose body is 300 MB, generated as it is sent; counts what the client let it send."""

    SIZE = 300 * 1024 * 1024

    def __init__(self) -> None:
        self.sent = 0
        self.done = threading.Event()

    def __call__(self, handler: BaseHTTPRequestHandler) -> None:
        chunk = b"x" * 65536
        try:
            handler.send_response(200)
            handler.send_header("Content-Length", str(self.SIZE))
            handler.end_headers()
            while self.sent < self.SIZE:
                handler.wfile.write(chunk)
                self.sent += len(chunk)
        except OSError:  # the client hung up, as it should
            pass
        finally:
            self.done.set()


def failed_delivery(url: str, fmt: str = "json") -> tuple[str, float]:
    """The DeliveryError message of one attempt, and how long the attempt took."""
    started = time.monotonic()
    with pytest.raises(DeliveryError) as failure:
        post_alert(url, alert(), fmt, deadline_seconds=DEADLINE)
    return str(failure.value), time.monotonic() - started


# --- delivery -------------------------------------------------------------------------------------


def test_a_2xx_answer_delivers_the_alert(endpoints) -> None:
    webhook = endpoints()
    post_alert(webhook.url, alert(), "json", deadline_seconds=DEADLINE)
    assert [m["key"] for m in webhook.received] == ["run:run-1"]


@pytest.mark.parametrize("status", [301, 302, 303])
def test_redirect_to_another_host_fails_the_delivery_and_names_no_location(
    endpoints, status
) -> None:
    elsewhere = endpoints(host="127.0.0.2")
    webhook = endpoints(answer=redirect_to(status, elsewhere.url))
    message, _ = failed_delivery(webhook.url)
    assert message == f"webhook redirected (HTTP {status}); redirects are not followed"
    assert elsewhere.requests == []


@pytest.mark.parametrize("status", [307, 308])
def test_method_keeping_redirect_never_resends_the_alert_body(endpoints, status) -> None:
    elsewhere = endpoints(host="127.0.0.2")
    webhook = endpoints(answer=redirect_to(status, elsewhere.url))
    message, _ = failed_delivery(webhook.url)
    assert f"redirected (HTTP {status})" in message
    assert [method for method, _ in webhook.requests] == ["POST"] and elsewhere.requests == []


def test_receiver_dripping_its_headers_fails_the_attempt_at_the_deadline(endpoints) -> None:
    webhook = endpoints(answer=drip_headers)
    message, took = failed_delivery(webhook.url)
    assert message == "webhook did not answer within 1 s"
    assert took < DEADLINE + MARGIN


def test_receiver_dripping_its_body_fails_the_attempt_at_the_deadline(endpoints) -> None:
    webhook = endpoints(answer=drip_body)
    message, took = failed_delivery(webhook.url)
    assert message == "webhook did not answer within 1 s"
    assert took < DEADLINE + MARGIN


def test_huge_answer_is_read_only_up_to_the_cap(endpoints) -> None:
    huge = HugeAnswer()
    webhook = endpoints(answer=huge)
    started = time.monotonic()
    post_alert(
        webhook.url, alert(), "json", deadline_seconds=10
    )  # the status code decides: delivered
    assert time.monotonic() - started < 5
    assert huge.done.wait(10), "the server still sends: the client did not hang up"
    # what the server got out is the cap plus what the kernel's socket buffers took: far from 300 MB
    assert huge.sent < HugeAnswer.SIZE / 10


def test_unreachable_webhook_error_names_no_url(endpoints) -> None:
    webhook = endpoints()
    url = webhook.url
    webhook.stop()
    message, _ = failed_delivery(url)
    assert message == "webhook unreachable (ConnectionError)"


# --- Slack text -----------------------------------------------------------------------------------


def mrkdwn_texts(payload: dict) -> list[str]:
    """Every text Slack parses as mrkdwn: the summary line, sections and fields (the links' section
    too: its markup is ours, see test_alert_links.py)."""
    texts = [payload["text"]]
    for block in payload["blocks"]:
        texts += [block["text"]["text"]] if block.get("text", {}).get("type") == "mrkdwn" else []
        texts += [field["text"] for field in block.get("fields", [])]
    return texts


def test_slack_escapes_mentions_links_and_ampersands_in_parameters() -> None:
    [parameters] = [
        t
        for t in mrkdwn_texts(slack_payload(alert(parameters={"note": HOSTILE})))
        if t.startswith("*Parameters*")
    ]
    assert parameters == (
        "*Parameters*\n{'note': "
        "'&lt;!channel&gt; &lt;@U1&gt; &amp; &lt;http://evil.example|click&gt;'}"
    )


def test_slack_escapes_mentions_links_and_ampersands_in_the_error() -> None:
    [error] = [
        t for t in mrkdwn_texts(slack_payload(alert(error=HOSTILE))) if t.startswith("*Error*")
    ]
    assert (
        error
        == "*Error*\n```&lt;!channel&gt; &lt;@U1&gt; &amp; &lt;http://evil.example|click&gt;```"
    )


def test_slack_escapes_every_string_that_comes_from_the_saga() -> None:
    fields = [
        "report",
        "title",
        "saga_id",
        "saga_state",
        "trigger",
        "partition",
        "failed_step",
        "error",
        "compensation",
    ]
    payload = slack_payload(alert(parameters={HOSTILE: HOSTILE}, **{f: HOSTILE for f in fields}))
    our_link = "<http://127.0.0.1:3000/runs/run-1|Run>"
    for text in mrkdwn_texts(payload):
        text = text.removeprefix(f"*Links*\n{our_link}")
        assert "<" not in text and ">" not in text
        assert "&" not in text.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "")


def test_slack_run_button_keeps_its_link() -> None:
    [actions] = [b for b in slack_payload(alert())["blocks"] if b["type"] == "actions"]
    assert actions["elements"][0]["url"] == "http://127.0.0.1:3000/runs/run-1"


def test_slack_error_full_of_ampersands_stays_within_the_section_limit() -> None:
    [error] = [
        t for t in mrkdwn_texts(slack_payload(alert(error="&" * 2500))) if t.startswith("*Error*")
    ]
    assert len(error) <= 3000 and error.endswith("&amp;```")


def test_slack_alert_arrives_escaped_at_the_webhook(endpoints) -> None:
    webhook = endpoints()
    post_alert(webhook.url, alert(parameters={"note": HOSTILE}), "slack", deadline_seconds=DEADLINE)
    assert "<!channel>" not in json.dumps(webhook.received) and "&lt;!channel&gt;" in json.dumps(
        webhook.received
    )
