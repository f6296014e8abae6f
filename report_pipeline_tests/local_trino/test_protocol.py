"""The REST protocol itself, as a client sees it over HTTP: documents, states, paging."""

from __future__ import annotations

import requests

from report_pipeline.local_trino import LocalTrino

HEADERS = {"X-Trino-User": "tester", "X-Trino-Catalog": "lake", "X-Trino-Schema": "analytics"}


def walk(engine: LocalTrino, sql: str, headers: dict | None = None) -> list[dict]:
    """Every document of one statement, from the POST to the last page."""
    documents = [
        requests.post(
            f"{engine.url}/v1/statement", data=sql, headers=headers or HEADERS, timeout=10
        ).json()
    ]
    while "nextUri" in documents[-1]:
        documents.append(requests.get(documents[-1]["nextUri"], timeout=10).json())
    return documents


def test_first_answer_is_queued_with_id_info_uri_and_stats(local_trino: LocalTrino) -> None:
    first = walk(local_trino, "SELECT 1")[0]
    assert first["stats"]["state"] == "QUEUED"
    assert first["id"] and first["infoUri"].endswith(first["id"])
    assert first["nextUri"].startswith(local_trino.url)
    assert "data" not in first


def test_statement_moves_from_queued_to_finished(local_trino: LocalTrino) -> None:
    states = [d["stats"]["state"] for d in walk(local_trino, "SELECT count(*) FROM events")]
    assert states[0] == "QUEUED"
    assert states[-1] == "FINISHED"
    order = ["QUEUED", "PLANNING", "RUNNING", "FINISHING", "FINISHED"]
    assert [order.index(s) for s in states] == sorted(order.index(s) for s in states)


def test_columns_arrive_no_later_than_the_first_rows(local_trino: LocalTrino) -> None:
    documents = walk(local_trino, "SELECT event_id FROM events LIMIT 3")
    first_with_data = next(i for i, d in enumerate(documents) if "data" in d)
    assert "columns" in documents[first_with_data]
    assert documents[first_with_data]["columns"][0]["typeSignature"] == {
        "rawType": "bigint",
        "arguments": [],
    }


def test_large_result_arrives_over_several_pages(local_trino: LocalTrino) -> None:
    documents = walk(local_trino, "SELECT sequential_number AS n FROM TABLE(sequence(0, 99999))")
    pages = [d["data"] for d in documents if "data" in d]
    assert len(pages) >= 3
    assert [row[0] for page in pages for row in page] == list(range(100000))


def test_large_result_through_the_client(cursor) -> None:
    cursor.execute(
        "SELECT sequential_number AS n, 'row ' || CAST(sequential_number AS varchar) AS label "
        "FROM TABLE(sequence(0, 149999))"
    )
    rows = cursor.fetchall()
    assert len(rows) == 150000
    assert rows[-1] == [149999, "row 149999"]


def test_repeated_poll_of_the_same_token_gets_the_same_document(local_trino: LocalTrino) -> None:
    first = requests.post(
        f"{local_trino.url}/v1/statement", data="SELECT 42", headers=HEADERS, timeout=10
    ).json()
    uri = first["nextUri"]
    answers = []
    while uri:
        answer = requests.get(uri, timeout=10).json()
        again = requests.get(uri, timeout=10).json()  # a client retry of the same poll
        assert again.get("data") == answer.get("data")
        answers.append(answer)
        uri = answer.get("nextUri")
    assert [row for a in answers for row in a.get("data", [])] == [[42]]


def test_update_documents_carry_update_type_and_count(local_trino: LocalTrino) -> None:
    sql = "CREATE TABLE scratch.protocol_ctas AS SELECT * FROM events WHERE event_id < 10"
    try:
        last = walk(local_trino, sql)[-1]
        assert last["updateType"] == "CREATE TABLE"
        assert last["updateCount"] == 10
        assert last["columns"][0]["name"] == "rows"
        assert last["data"] == [[10]]
    finally:
        walk(local_trino, "DROP TABLE IF EXISTS scratch.protocol_ctas")


def test_create_table_if_not_exists_as_on_an_existing_table_writes_nothing(
    local_trino: LocalTrino,
) -> None:
    sql = (
        "CREATE TABLE IF NOT EXISTS scratch.protocol_ctas_twice AS "
        "SELECT * FROM events WHERE event_id < 10"
    )
    try:
        assert walk(local_trino, sql)[-1]["updateCount"] == 10
        again = walk(local_trino, sql)[-1]
        assert (again["updateType"], again["updateCount"], again.get("error")) == (
            "CREATE TABLE",
            0,
            None,
        )
    finally:
        walk(local_trino, "DROP TABLE IF EXISTS scratch.protocol_ctas_twice")


def test_bit_shift_functions_are_translated(local_trino: LocalTrino) -> None:
    last = walk(local_trino, "SELECT bitwise_right_shift(256, 4), bitwise_left_shift(1, 10)")[-1]
    assert last["data"] == [[16, 1024]]


def test_stats_have_every_field_the_client_reads(local_trino: LocalTrino) -> None:
    stats = walk(local_trino, "SELECT count(*) FROM events")[-1]["stats"]
    for field in (
        "state",
        "queued",
        "scheduled",
        "nodes",
        "totalSplits",
        "queuedSplits",
        "runningSplits",
        "completedSplits",
        "cpuTimeMillis",
        "wallTimeMillis",
        "queuedTimeMillis",
        "elapsedTimeMillis",
        "processedRows",
        "processedBytes",
        "physicalInputBytes",
        "peakMemoryBytes",
        "spilledBytes",
        "progressPercentage",
    ):
        assert field in stats, field
    assert stats["processedRows"] > 0
    assert stats["completedSplits"] == stats["totalSplits"] > 0


def test_request_without_user_is_rejected_with_a_trino_error(local_trino: LocalTrino) -> None:
    response = requests.post(f"{local_trino.url}/v1/statement", data="SELECT 1", timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["errorType"] == "USER_ERROR"
    assert "User must be set" in response.json()["error"]["message"]


def test_empty_statement_is_rejected(local_trino: LocalTrino) -> None:
    response = requests.post(
        f"{local_trino.url}/v1/statement", data="  ", headers=HEADERS, timeout=10
    )
    assert response.status_code == 400
    assert response.json()["message"] == "SQL statement is empty"


def test_unknown_path_gets_json_not_a_traceback(local_trino: LocalTrino) -> None:
    response = requests.get(f"{local_trino.url}/v1/nothing/here", timeout=10)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert "Traceback" not in response.text


def test_poll_of_an_unknown_query_is_not_found(local_trino: LocalTrino) -> None:
    response = requests.get(
        f"{local_trino.url}/v1/statement/executing/20260101_000000_00001_aaaaa/abcd/1", timeout=10
    )
    assert response.status_code == 404


def test_server_info_names_a_coordinator(local_trino: LocalTrino) -> None:
    info = requests.get(f"{local_trino.url}/v1/info", timeout=10).json()
    assert info["coordinator"] is True and info["starting"] is False


def test_info_uri_serves_a_page_about_the_query(local_trino: LocalTrino) -> None:
    first = walk(local_trino, "SELECT 'visible in the ui'")[0]
    page = requests.get(first["infoUri"], timeout=10)
    assert page.status_code == 200
    assert first["id"] in page.text and "visible in the ui" in page.text
