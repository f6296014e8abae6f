"""The code location loads in a real webserver and daemon, and a launched report runs to success."""

from __future__ import annotations

from report_pipeline_tests.builders import start_saga_config
from report_pipeline_tests.orchestration.conftest import DAILY_PARAMETERS


def test_launched_report_succeeds_through_the_daemon(dagster_stack, ledger) -> None:
    run_id = dagster_stack.launch("daily_country_report", start_saga_config(DAILY_PARAMETERS))
    assert dagster_stack.wait_for_run(run_id) == "SUCCESS"
    assert ledger.get_saga(run_id).state.value == "SUCCEEDED"
