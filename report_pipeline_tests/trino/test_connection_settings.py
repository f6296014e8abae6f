"""Production connection settings, against the real Trino's HTTPS listener (self-signed certificate,
file password authenticator, JWTs signed by the test's key)."""

from __future__ import annotations

import pytest
import requests

from report_pipeline.orchestration.resources import (
    TrinoResource,
    parse_session_properties,
    trino_resource_from_env,
)
from report_pipeline.saga import PermanentStepError
from report_pipeline.trino.client import QueryOutcome, TrinoClient, TrinoSettings
from report_pipeline.trino.sql import Statement
from report_pipeline_tests.credentials import USER


@pytest.fixture
def https(real_trino, trino_credentials):
    def settings(**overrides) -> TrinoSettings:
        options = {
            "host": "127.0.0.1",
            "port": trino_credentials.secure.https_port,
            "user": USER,
            "http_scheme": "https",
            "verify": str(trino_credentials.ca_bundle),
            "password": trino_credentials.password,
            **overrides,
        }
        return TrinoSettings(**options)

    return settings


def current_user(settings: TrinoSettings) -> str:
    return TrinoClient(settings).execute(Statement("SELECT current_user", [])).rows[0][0]


def recorded_query(client: TrinoClient, outcome: QueryOutcome) -> dict:
    """The coordinator's record of a statement the client ran; the test fails without one."""
    assert outcome.query_id is not None
    info = client.query_info(outcome.query_id)
    assert info, f"the coordinator has no record of query {outcome.query_id}"
    return info


def test_https_with_a_password_runs_statements(https) -> None:
    assert current_user(https()) == USER


def test_https_with_a_jwt_runs_statements(https, trino_credentials) -> None:
    assert current_user(https(password=None, jwt=trino_credentials.token())) == USER


def test_a_wrong_password_fails_without_retrying(https) -> None:
    with pytest.raises(PermanentStepError, match="401"):
        current_user(https(password="not-the-password"))


def test_an_expired_jwt_is_refused(https, trino_credentials) -> None:
    with pytest.raises(PermanentStepError, match="401"):
        current_user(https(password=None, jwt=trino_credentials.token(lifetime_seconds=-60)))


def test_a_certificate_that_does_not_verify_is_a_permanent_tls_error(https) -> None:
    with pytest.raises(PermanentStepError) as failure:
        current_user(https(verify=True))  # the system's CAs do not know the test's certificate
    assert failure.value.error_name == "TLS_ERROR"


def test_verify_false_accepts_a_self_signed_certificate(https) -> None:
    assert current_user(https(verify=False)) == USER


def test_query_lookup_uses_the_same_tls_and_credentials(https) -> None:
    client = TrinoClient(https())
    outcome = client.execute(Statement("SELECT 1", []))
    info = recorded_query(client, outcome)
    assert info["state"] == "FINISHED" and info["session"]["user"] == USER


def test_client_tags_source_and_session_properties_reach_the_coordinator(https) -> None:
    client = TrinoClient(
        https(
            client_tags=("reports", "tier-1"),
            source="report_pipeline-tests",
            session_properties={"join_distribution_type": "BROADCAST"},
        )
    )
    outcome = client.execute(Statement("SHOW SESSION LIKE 'join_distribution_type'", []))
    assert outcome.rows[0][1] == "BROADCAST"
    session = recorded_query(client, outcome)["session"]
    assert sorted(session["clientTags"]) == ["reports", "tier-1"]
    assert session["source"] == "report_pipeline-tests"


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"password": "secret"}, "need HTTPS"),
        ({"jwt": "token"}, "need HTTPS"),
        ({"http_scheme": "https", "password": "secret", "jwt": "token"}, "not both"),
        ({"http_scheme": "ftp"}, "http or https"),
        ({"http_scheme": "https", "verify": "/nonexistent/ca.pem"}, "CA bundle"),
    ],
)
def test_unusable_settings_fail_before_any_connection(settings, problem) -> None:
    with pytest.raises(ValueError, match=problem):
        TrinoSettings(**settings)


def test_secrets_never_appear_in_the_settings_repr() -> None:
    text = repr(TrinoSettings(http_scheme="https", password="hunter2-password"))
    assert "hunter2" not in text and "***" in text


def test_resource_reads_secrets_from_the_environment_at_run_time(monkeypatch) -> None:
    resource = TrinoResource(host="trino.example", http_scheme="https", verify="false")
    monkeypatch.setenv("TRINO_PASSWORD", "from-env")
    settings = resource.settings()
    assert (settings.password, settings.verify, settings.http_scheme) == (
        "from-env",
        False,
        "https",
    )


def test_resource_with_a_password_over_http_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("TRINO_PASSWORD", "from-env")
    with pytest.raises(ValueError, match="need HTTPS"):
        TrinoResource(host="trino.example").settings()


def test_environment_fills_scheme_tags_and_session_properties(monkeypatch) -> None:
    monkeypatch.setenv("TRINO_HTTP_SCHEME", "https")
    monkeypatch.setenv("TRINO_VERIFY", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("TRINO_CLIENT_TAGS", "reports, nightly")
    monkeypatch.setenv(
        "TRINO_SESSION_PROPERTIES", "query_max_memory=2GB,iceberg.compression_codec=ZSTD"
    )
    resource = trino_resource_from_env()
    assert (resource.http_scheme, resource.verify) == (
        "https",
        "/etc/ssl/certs/ca-certificates.crt",
    )
    assert resource.client_tags == ["reports", "nightly"]
    assert resource.session_properties == {
        "query_max_memory": "2GB",
        "iceberg.compression_codec": "ZSTD",
    }


@pytest.mark.parametrize("text", ["query_max_memory", "Bad-Name=1", "a=1,=2"])
def test_malformed_session_properties_are_refused(text) -> None:
    with pytest.raises(ValueError, match="TRINO_SESSION_PROPERTIES"):
        parse_session_properties(text)


def test_plain_http_still_needs_no_credentials(real_trino) -> None:
    assert requests.get(f"{real_trino.url}/v1/info", timeout=5).ok


def test_an_explicit_ca_bundle_wins_over_requests_ca_bundle_in_the_environment(
    https, monkeypatch
) -> None:
    # requests lets this variable override a session's `verify`; many hosts set it
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    assert current_user(https()) == USER
