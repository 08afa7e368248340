"""Clients per side: created once per process, and a role to assume for one side."""

from __future__ import annotations

import pytest

from tasks.aws import clients
from tasks.core import config
from tasks.core.locations import REPLICA
from tests.support.tables import table


def test_clients_are_created_once_per_side(env: dict[str, str], moto_url: str) -> None:
    primary, replica = table(f"{moto_url}/table-1"), table(f"{moto_url}/table-1", REPLICA)
    assert clients.dynamodb(primary) is clients.dynamodb(table(f"{moto_url}/table-1"))
    assert clients.dynamodb(primary) is not clients.dynamodb(replica)


def test_replica_side_assumes_its_role(
    env: dict[str, str], moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_url)
    monkeypatch.setenv(
        "REPLICATOR_REPLICA_ROLE_ARN", "arn:aws:iam::123456789012:role/replica-writer"
    )
    config.reset()
    location = f"{moto_url}/table-1"

    replica = clients.dynamodb(table(location, REPLICA))._request_signer._credentials
    primary = clients.dynamodb(table(location))._request_signer._credentials

    assert primary.get_frozen_credentials().access_key == "testing"
    assumed = replica.get_frozen_credentials()
    assert assumed.access_key != "testing" and assumed.token  # temporary credentials from STS
    replica_client = clients.dynamodb(table(location, REPLICA))
    assert replica_client.list_tables()["TableNames"] == []  # and they work


def test_local_endpoint_without_credentials_gets_placeholders(
    env: dict[str, str], moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path) + "/none")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path) + "/none")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    ddb = clients.dynamodb(table(f"{moto_url}/table-1"))
    assert ddb.list_tables()["TableNames"] == []


def _endpoints(location: str) -> dict[str, str]:
    handle = table(location)
    return {
        "dynamodb": clients.dynamodb(handle).meta.endpoint_url,
        "dynamodbstreams": clients.dynamodbstreams(handle).meta.endpoint_url,
        "kinesis": clients.kinesis(handle).meta.endpoint_url,
    }


def test_each_service_takes_its_own_endpoint_setting(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", "http://127.0.0.1:4001")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "http://127.0.0.1:4002")
    config.reset()
    assert _endpoints("127.0.0.1:4000/orders") == {
        "dynamodb": "http://127.0.0.1:4000",  # the location's own endpoint
        "dynamodbstreams": "http://127.0.0.1:4002",
        "kinesis": "http://127.0.0.1:4001",
    }
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:4003")
    config.reset()
    assert _endpoints("us-east-1/orders")["dynamodb"] == "http://127.0.0.1:4003"


def test_without_settings_the_stream_services_follow_the_table(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert set(_endpoints("127.0.0.1:4000/orders").values()) == {"http://127.0.0.1:4000"}
    assert _endpoints("eu-west-1/orders") == {
        "dynamodb": "https://dynamodb.eu-west-1.amazonaws.com",
        "dynamodbstreams": "https://streams.dynamodb.eu-west-1.amazonaws.com",
        "kinesis": "https://kinesis.eu-west-1.amazonaws.com",
    }
    # AWS_ENDPOINT_URL is for every service: it beats the table's endpoint for Kinesis, which
    # is not part of the table, and not for the table's own stream.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4005")
    config.reset()
    assert _endpoints("127.0.0.1:4000/orders") == {
        "dynamodb": "http://127.0.0.1:4000",
        "dynamodbstreams": "http://127.0.0.1:4000",
        "kinesis": "http://127.0.0.1:4005",
    }
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    config.reset()
    assert _endpoints("eu-west-1/orders")["kinesis"] == "https://kinesis.eu-west-1.amazonaws.com"
