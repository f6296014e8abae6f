"""Where an operator goes from an alert: the names the stack's Grafana, Loki and dashboard agree on.

The compose stack provisions these (report_pipeline/deploy/grafana, .../loki, .../alloy); the
tests check the files use exactly these names, so an alert's links cannot point at nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import quote, urlencode

DASHBOARD_UID = "report-pipeline"  # the dashboard in deploy/grafana/dashboards/report_pipeline.json
SAGA_VARIABLE = "saga_id"  # its variable for one saga (a text box): the saga's log panel
PROMETHEUS_DATASOURCE_UID = "prometheus"
LOKI_DATASOURCE_UID = "loki"
# The compose services whose JSON logs the shipper sends to Loki, under the stream label `service`.
# saga_id, run_id, report and step are parsed from each line (`| json`), never stream labels.
LOG_SERVICES = ("code-location", "dagster-webserver", "dagster-daemon")
LOG_STREAM_SELECTOR = '{service=~"' + "|".join(LOG_SERVICES) + '"}'

# --- the links an alert carries ------------------------------------------------------------------
# Each builder takes a base URL as configured (DAGSTER_UI_URL, REPORT_PIPELINE_GRAFANA_URL) and
# encodes every value it puts into the URL: nothing from a saga is pasted in as text.

REPORT_VARIABLE = "report"  # the dashboard's variable for one report (every panel filters by it)
LOGS_LEAD = dt.timedelta(minutes=5)  # a saga's logs are shown from this long before it started


def run_url(dagster_ui_url: str, run_id: str) -> str:
    """A run's page in the Dagster UI."""
    return f"{_base(dagster_ui_url)}/runs/{quote(run_id, safe='')}"


def dashboard_url(
    grafana_url: str, *, saga_id: str | None = None, report: str | None = None
) -> str:
    """The dashboard, filtered to one saga (its log panel) and to one report (every other panel)."""
    variables = [(f"var-{SAGA_VARIABLE}", saga_id), (f"var-{REPORT_VARIABLE}", report)]
    query = _query([(name, value) for name, value in variables if value is not None])
    return f"{_base(grafana_url)}/d/{DASHBOARD_UID}/" + (f"?{query}" if query else "")


def saga_logs_query(saga_id: str) -> str:
    """The LogQL selecting one saga's lines: every line a saga writes carries `saga_id`."""
    return f"{LOG_STREAM_SELECTOR} | json | saga_id={_logql_string(saga_id)}"


def saga_logs_url(grafana_url: str, saga_id: str, started_at: dt.datetime) -> str:
    """Grafana Explore on Loki with the saga's LogQL, from just before the saga started to now."""
    since = started_at if started_at.tzinfo else started_at.replace(tzinfo=dt.UTC)
    pane = {
        "datasource": LOKI_DATASOURCE_UID,
        "queries": [
            {
                "refId": "A",
                "datasource": {"type": "loki", "uid": LOKI_DATASOURCE_UID},
                "expr": saga_logs_query(saga_id),
                "queryType": "range",
            }
        ],
        "range": {"from": str(int((since - LOGS_LEAD).timestamp() * 1000)), "to": "now"},
    }
    panes = json.dumps({"saga": pane}, separators=(",", ":"), ensure_ascii=False)
    return f"{_base(grafana_url)}/explore?" + _query(
        [("schemaVersion", "1"), ("panes", panes), ("orgId", "1")]
    )


def _base(url: str) -> str:
    return url.rstrip("/")


def _query(pairs: list[tuple[str, str]]) -> str:
    """A URL query with every name and value percent-encoded (a space as %20, never `+`)."""
    return urlencode(pairs, quote_via=quote)


def _logql_string(value: str) -> str:
    """`value` as a LogQL double-quoted string. LogQL takes Go's string escapes, and a JSON string
    is one: `"`, `\\` and control characters escaped, everything else as it is."""
    return json.dumps(value, ensure_ascii=False)
