"""START TRANSACTION, COMMIT and ROLLBACK as Trino answers them for connectors that only
autocommit."""

from __future__ import annotations

import pytest
import requests
from trino.transaction import IsolationLevel

from report_pipeline_tests.local_trino import error_name_of


@pytest.fixture
def transactional(connect):
    """A connection whose client starts a transaction on its first statement."""
    return connect(isolation_level=IsolationLevel.READ_COMMITTED)


def test_reads_inside_a_transaction_answer_and_commit_ends_it(transactional) -> None:
    cursor = transactional.cursor()
    cursor.execute("SELECT count(*) FROM users")
    assert cursor.fetchall()[0][0] > 0
    transactional.commit()
    assert transactional.transaction is None


def test_a_write_inside_a_transaction_fails_autocommit_write_conflict(transactional) -> None:
    assert (
        error_name_of(transactional.cursor(), "CREATE TABLE memory.default.in_tx (x integer)")
        == "AUTOCOMMIT_WRITE_CONFLICT"
    )
    transactional.rollback()
    assert (
        error_name_of(transactional.cursor(), "SELECT * FROM memory.default.in_tx")
        == "TABLE_NOT_FOUND"
    )


def test_after_a_failure_the_transaction_ignores_statements_until_it_ends(transactional) -> None:
    cursor = transactional.cursor()
    assert error_name_of(cursor, "SELECT * FROM no_such_table") == "TABLE_NOT_FOUND"
    assert error_name_of(transactional.cursor(), "SELECT 1") == "TRANSACTION_ALREADY_ABORTED"
    transactional.rollback()


def test_commit_without_a_transaction_is_not_in_transaction(cursor) -> None:
    assert error_name_of(cursor, "COMMIT") == "NOT_IN_TRANSACTION"
    assert error_name_of(cursor, "ROLLBACK") == "NOT_IN_TRANSACTION"


def _statement(url: str, sql: str, transaction_id: str) -> tuple[dict, dict]:
    """Run one statement over raw HTTP: its final document and the X-Trino headers it sent back."""
    headers = {"X-Trino-User": "t", "X-Trino-Transaction-Id": transaction_id}
    response = requests.post(f"{url}/v1/statement", data=sql, headers=headers, timeout=10)
    document, sent = response.json(), {}
    while "nextUri" in document:
        response = requests.get(document["nextUri"], headers=headers, timeout=10)
        document = response.json()
        sent.update({k: v for k, v in response.headers.items() if k.lower().startswith("x-trino")})
    return document, sent


def test_a_read_only_transaction_refuses_writes_and_rollback_clears_it(local_trino) -> None:
    # the client has no READ ONLY switch: the statement asks for it
    _, sent = _statement(local_trino.url, "START TRANSACTION READ ONLY", "NONE")
    transaction_id = sent["X-Trino-Started-Transaction-Id"]
    document, _ = _statement(
        local_trino.url, "INSERT INTO memory.default.nothing VALUES 1", transaction_id
    )
    assert document["error"]["errorName"] == "READ_ONLY_VIOLATION"
    document, sent = _statement(local_trino.url, "ROLLBACK", transaction_id)
    assert (document["updateType"], sent["X-Trino-Clear-Transaction-Id"]) == ("ROLLBACK", "true")


def test_start_transaction_needs_a_client_that_supports_transactions(local_trino) -> None:
    response = requests.post(
        f"{local_trino.url}/v1/statement",
        data="START TRANSACTION",
        timeout=10,
        headers={"X-Trino-User": "t"},
    )
    document = response.json()
    while "nextUri" in document:
        document = requests.get(document["nextUri"], timeout=10).json()
    assert document["error"]["errorName"] == "INCOMPATIBLE_CLIENT"


def test_nested_start_transaction_is_not_supported(local_trino) -> None:
    _, sent = _statement(local_trino.url, "START TRANSACTION", "NONE")
    transaction_id = sent["X-Trino-Started-Transaction-Id"]
    document, _ = _statement(local_trino.url, "START TRANSACTION", transaction_id)
    assert document["error"]["errorName"] == "NOT_SUPPORTED"
    document, _ = _statement(local_trino.url, "COMMIT", transaction_id)
    assert document["error"]["errorName"] == "TRANSACTION_ALREADY_ABORTED"


def test_an_unknown_transaction_id_is_unknown_transaction(local_trino) -> None:
    document, _ = _statement(local_trino.url, "SELECT 1", "8d3e0c3e-5d4a-4f0b-9e1e-6c4c6c4c6c4c")
    assert document["error"]["errorName"] == "UNKNOWN_TRANSACTION"


def test_a_transaction_id_that_is_no_uuid_is_a_bad_request(local_trino) -> None:
    response = requests.post(
        f"{local_trino.url}/v1/statement",
        data="SELECT 1",
        timeout=10,
        headers={"X-Trino-User": "t", "X-Trino-Transaction-Id": "bogus"},
    )
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
