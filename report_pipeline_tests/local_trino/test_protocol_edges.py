"""Polls at the edges of a statement's life answer as Trino 476 does: each answer below is asserted
on the local engine and on the real Trino alike. A token other than the current or next one, or a
query id nobody knows, on the statement path is 404; an unknown id on /v1/query is 410; a poll
racing a cancel gets a page or the USER_CANCELED document."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Protocol

import pytest
import requests

from report_pipeline.local_trino import LocalTrino
from report_pipeline_tests.local_trino import engine_query, error_name

HEADERS = {"X-Trino-User": "tester", "X-Trino-Catalog": "lake", "X-Trino-Schema": "analytics"}
UNKNOWN_ID = "20260101_000000_99999_zzzzz"
# ten pages of 20,000 rows
MULTI_PAGE = "SELECT sequential_number AS n FROM TABLE(sequence(0, 199999))"


class Server(Protocol):
    @property
    def url(self) -> str: ...


@pytest.fixture(params=["local", pytest.param("trino", marks=pytest.mark.real_trino)])
def server(request: pytest.FixtureRequest, local_trino: LocalTrino) -> Server:
    """The local engine, then the real Trino: each edge must answer the same on both."""
    return local_trino if request.param == "local" else request.getfixturevalue("real_trino")


def submit(engine: Server, sql: str) -> dict:
    return requests.post(f"{engine.url}/v1/statement", data=sql, headers=HEADERS, timeout=10).json()


def with_token(uri: str, token: int) -> str:
    return re.sub(r"/\d+$", f"/{token}", uri)


def token_of(uri: str) -> int:
    return int(uri.rsplit("/", 1)[1])


def first_data_page(engine: Server, sql: str) -> tuple[str, dict]:
    """Poll a statement up to its first page of rows: that page's URI and document."""
    document = submit(engine, sql)
    while True:
        uri = document["nextUri"]
        document = requests.get(uri, timeout=10).json()
        if "data" in document:
            return uri, document


@pytest.fixture
def paging(server: Server) -> Iterator[tuple[str, dict]]:
    """A multi-page statement polled up to its first page of rows (URI, document); cancelled
    afterwards."""
    uri, page = first_data_page(server, MULTI_PAGE)
    yield uri, page
    requests.delete(page["nextUri"], timeout=10)


def test_poll_past_the_last_page_is_not_found(server: Server) -> None:
    document = submit(server, "SELECT 1")
    while "nextUri" in document:
        last_uri = document["nextUri"]
        document = requests.get(last_uri, timeout=10).json()
    beyond = requests.get(with_token(last_uri, token_of(last_uri) + 1), timeout=10)
    assert beyond.status_code == 404


def test_repeated_poll_of_the_last_page_still_answers_it(server: Server) -> None:
    document = submit(server, "SELECT 1")
    while "nextUri" in document:
        last_uri = document["nextUri"]
        document = requests.get(last_uri, timeout=10).json()
    again = requests.get(last_uri, timeout=10)
    assert again.status_code == 200
    assert again.json() == document


def test_poll_of_an_older_token_is_not_found(paging: tuple[str, dict]) -> None:
    uri, _ = paging
    older = requests.get(with_token(uri, token_of(uri) - 1), timeout=10)
    assert older.status_code == 404


def test_poll_skipping_a_token_is_not_found(paging: tuple[str, dict]) -> None:
    uri, _ = paging
    ahead = requests.get(with_token(uri, token_of(uri) + 2), timeout=10)
    assert ahead.status_code == 404


def test_poll_of_an_unknown_query_in_the_queued_phase_is_not_found(server: Server) -> None:
    response = requests.get(f"{server.url}/v1/statement/queued/{UNKNOWN_ID}/abcd/1", timeout=10)
    assert response.status_code == 404


def test_the_local_engines_not_found_is_a_trino_style_json_error(local_trino: LocalTrino) -> None:
    # (Trino's own 404 here has no JSON body; the local engine answers every error in JSON)
    response = requests.get(
        f"{local_trino.url}/v1/statement/queued/{UNKNOWN_ID}/abcd/1", timeout=10
    )
    assert response.json()["error"]["errorName"] == "NOT_FOUND"


def test_cancel_of_an_unknown_statement_is_not_found(server: Server) -> None:
    response = requests.delete(
        f"{server.url}/v1/statement/executing/{UNKNOWN_ID}/abcd/1", timeout=10
    )
    assert response.status_code == 404


def test_poll_with_a_wrong_slug_is_not_found(paging: tuple[str, dict]) -> None:
    uri, _ = paging
    wrong = re.sub(r"/[^/]+/(\d+)$", r"/y0000/\1", uri)
    assert wrong != uri
    assert requests.get(wrong, timeout=10).status_code == 404


def test_delete_of_an_unknown_query_id_is_no_content(server: Server) -> None:
    response = requests.delete(f"{server.url}/v1/query/{UNKNOWN_ID}", headers=HEADERS, timeout=10)
    assert response.status_code == 204


def test_poll_after_a_cancel_gets_the_user_canceled_document(paging: tuple[str, dict]) -> None:
    _, page = paging
    assert requests.delete(page["nextUri"], timeout=10).status_code == 204
    answer = requests.get(page["nextUri"], timeout=10)
    assert answer.status_code == 200
    assert answer.json()["error"]["errorName"] == "USER_CANCELED"
    assert "nextUri" not in answer.json()


def test_cancel_racing_a_poll_never_answers_500(local_trino: LocalTrino) -> None:
    outcomes: dict[str, int] = {}
    for _ in range(200):
        _, page = first_data_page(local_trino, MULTI_PAGE)
        start = threading.Barrier(2)
        answers: dict[str, requests.Response] = {}
        threads = [
            threading.Thread(target=_send, args=(start, answers, method, page["nextUri"]))
            for method in ("GET", "DELETE")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert answers["DELETE"].status_code == 204
        outcome = _outcome(answers["GET"])
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        assert error_name(engine_query(local_trino, page["id"])) == "USER_CANCELED"
    assert set(outcomes) <= {"data page", "USER_CANCELED", "past the end (404)"}, outcomes


def _send(
    start: threading.Barrier, answers: dict[str, requests.Response], method: str, uri: str
) -> None:
    """Send a request the moment the other thread is ready too; its answer goes to
    answers[method]."""
    start.wait()
    answers[method] = requests.request(method, uri, timeout=10)


def _outcome(response: requests.Response) -> str:
    if response.status_code == 404:
        return "past the end (404)"
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    document = response.json()
    if "error" in document:
        return document["error"]["errorName"]
    return (
        "data page"
        if document.get("data") and "nextUri" in document
        else f"other: {sorted(document)}"
    )
