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
