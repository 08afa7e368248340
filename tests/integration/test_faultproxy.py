"""The fault-injecting proxy, between boto3 clients and a real moto server over HTTP."""

from __future__ import annotations

import http.client
import io
import threading
import time
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries import standard

from tests.support.faultproxy import Counts, FaultProxy, Rule, _json_reply
from tests.support.tables import client, create_table, scan_all

# botocore's `max_attempts` counts retries, `total_max_attempts` the first attempt too.
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})
MB = 1024 * 1024


CHECKING = "replicator/permission-check"


def _client(endpoint: str, service: str = "dynamodb", config: Config = NO_RETRIES) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=config,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _item(i: int) -> dict[str, Any]:
    return {"id": {"S": f"k{i}"}, "v": {"N": str(i)}}


def _puts(ddb: Any, table: str, n: int) -> list[bool]:
    """Put n items; which of them succeeded."""
    outcomes = []
    for i in range(n):
        try:
            ddb.put_item(TableName=table, Item=_item(i))
            outcomes.append(True)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
            outcomes.append(False)
    return outcomes


def test_forwards_dynamodb_calls_unchanged_and_counts_them(
    fault_proxy: FaultProxy, moto_url: str
) -> None:
    create_table(fault_proxy.url, "t")
    ddb = _client(fault_proxy.url)
    ddb.put_item(TableName="t", Item=_item(1))

    assert ddb.get_item(TableName="t", Key={"id": {"S": "k1"}}, ConsistentRead=True)[
        "Item"
    ] == _item(1)
    assert list(scan_all(moto_url, "t").values()) == [_item(1)]
    assert fault_proxy.counts("PutItem", "t").forwarded == 1
    assert fault_proxy.counts("DynamoDB_20120810.GetItem").forwarded == 1
    assert fault_proxy.counts("GetItem", "other").forwarded == 0


def test_forwards_s3_objects_and_a_chunked_multipart_upload(fault_proxy: FaultProxy) -> None:
    s3 = _client(fault_proxy.url, "s3")
    s3.create_bucket(Bucket="bucket")
    s3.put_object(Bucket="bucket", Key="small", Body=b"hello")
    payload = bytes(range(256)) * (6 * MB // 256)
    config = TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB)
    s3.upload_fileobj(io.BytesIO(payload), "bucket", "big", Config=config)

    assert s3.get_object(Bucket="bucket", Key="small")["Body"].read() == b"hello"
    assert s3.head_object(Bucket="bucket", Key="big")["ContentLength"] == len(payload)
    assert s3.get_object(Bucket="bucket", Key="big")["Body"].read() == payload
    assert fault_proxy.counts("PUT").forwarded == 4  # bucket, small object, two parts


def test_forwards_a_chunked_request_body(fault_proxy: FaultProxy) -> None:
    s3 = _client(fault_proxy.url, "s3")
    s3.create_bucket(Bucket="bucket")
    host, port = fault_proxy.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request(
        "PUT", "/bucket/chunked", body=iter([b"first,", b"second"]), encode_chunked=True
    )

    assert connection.getresponse().status == 200
    assert s3.get_object(Bucket="bucket", Key="chunked")["Body"].read() == b"first,second"
    connection.close()


def test_forwards_kinesis_and_matches_service_prefixes_exactly(fault_proxy: FaultProxy) -> None:
    kinesis = _client(fault_proxy.url, "kinesis")
    kinesis.create_stream(StreamName="s", ShardCount=1)
    shard = kinesis.describe_stream(StreamName="s")["StreamDescription"]["Shards"][0]["ShardId"]
    kinesis.put_record(StreamName="s", Data=b"payload", PartitionKey="p")
    iterator = kinesis.get_shard_iterator(
        StreamName="s", ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    fault_proxy.add_rule(Rule("DynamoDBStreams_20120810.GetRecords"))

    records = kinesis.get_records(ShardIterator=iterator)["Records"]

    assert [r["Data"] for r in records] == [b"payload"]
    fault_proxy.add_rule(Rule("Kinesis_20131202.GetRecords"))
    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        kinesis.get_records(ShardIterator=iterator)
    assert fault_proxy.counts("GetRecords") == fault_proxy.counts("Kinesis_20131202.GetRecords")
    assert (
        fault_proxy.counts("GetRecords").forwarded,
        fault_proxy.counts("GetRecords").throttle,
    ) == (1, 1)


def test_throttles_the_first_n_of_one_table_only(fault_proxy: FaultProxy, moto_url: str) -> None:
    create_table(moto_url, "a")
    create_table(moto_url, "b")
    ddb = _client(fault_proxy.url)
    rule = fault_proxy.add_rule(Rule("PutItem", table="a", first=2))

    assert _puts(ddb, "b", 2) == [True, True]
    assert _puts(ddb, "a", 4) == [False, False, True, True]
    assert (rule.seen, rule.fired) == (4, 2)
    assert fault_proxy.counts("PutItem", "a").throttle == 2
    assert fault_proxy.counts("PutItem", "a").forwarded == 2
    assert fault_proxy.counts("PutItem").injected == 2


def test_a_rule_counts_and_calls_are_of_one_purpose(fault_proxy: FaultProxy, moto_url: str) -> None:
    """The permission check's requests (``replicator/permission-check`` in the User-Agent) are
    not the work: a rule, the counts and the calls are of the requests without a purpose unless
    given one."""
    create_table(moto_url, "a")
    work = _client(fault_proxy.url)
    check = _client(fault_proxy.url, config=NO_RETRIES.merge(Config(user_agent_extra=CHECKING)))
    fault_proxy.add_rule(Rule("PutItem"))

    assert _puts(check, "a", 2) == [True, True]
    assert _puts(work, "a", 1) == [False]
    assert fault_proxy.counts("PutItem", "a") == Counts(throttle=1)
    assert fault_proxy.counts("PutItem", "a", "permission-check") == Counts(forwarded=2)
    assert [c.status for c in fault_proxy.calls("PutItem")] == [400]
    checked = fault_proxy.calls("PutItem", "permission-check")
    assert [(c.status, c.purpose) for c in checked] == [(200, "permission-check")] * 2

    fault_proxy.clear_rules()
    fault_proxy.add_rule(Rule("PutItem", purpose="permission-check"))
    assert _puts(check, "a", 1) == [False]
    assert _puts(work, "a", 1) == [True]


def test_throttles_every_nth_and_seeded_fractions_repeatably(
    fault_proxy: FaultProxy, moto_url: str
) -> None:
    create_table(moto_url, "t")
    ddb = _client(fault_proxy.url)
    every = fault_proxy.add_rule(Rule("PutItem", every=3))
    assert _puts(ddb, "t", 6) == [True, True, False, True, True, False]
    fault_proxy.remove_rule(every)

    runs = []
    for _ in range(2):
        rule = fault_proxy.add_rule(Rule("PutItem", probability=0.5, seed=7))
        runs.append(_puts(ddb, "t", 10))
        fault_proxy.remove_rule(rule)
    assert runs[0] == runs[1]
    assert 0 < runs[0].count(False) < 10


def test_server_error_is_a_500_internal_server_error(
    fault_proxy: FaultProxy, moto_url: str
) -> None:
    create_table(moto_url, "t")
    fault_proxy.add_rule(Rule("Scan", action="error"))

    with pytest.raises(ClientError) as caught:
        _client(fault_proxy.url).scan(TableName="t")

    assert caught.value.response["Error"]["Code"] == "InternalServerError"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert fault_proxy.counts("Scan", "t").error == 1
    assert fault_proxy.counts("Scan", "t").forwarded == 0


def test_botocore_standard_retries_get_through_two_throttles(
    fault_proxy: FaultProxy, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Botocore waits up to 1s and 2s after throttles; keep its back-off, shrink its scale.
    monkeypatch.setattr(
        standard.ExponentialBackoff,
        "_DEFAULT_BACKOFF_CONFIG",
        {"throttling_base_scale": 0.01, "non_throttling_base_scale": 0.01},
    )
    create_table(moto_url, "t")
    fault_proxy.add_rule(Rule("PutItem", first=2))
    ddb = _client(fault_proxy.url, config=Config(retries={"mode": "standard", "max_attempts": 5}))

    response = ddb.put_item(TableName="t", Item=_item(1))

    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert list(scan_all(moto_url, "t").values()) == [_item(1)]
    counts = fault_proxy.counts("PutItem", "t")
    assert (counts.throttle, counts.forwarded) == (2, 1)


def test_batch_write_is_partly_forwarded_and_the_rest_unprocessed(
    fault_proxy: FaultProxy, moto_url: str
) -> None:
    create_table(moto_url, "replica")
    create_table(moto_url, "other")
    fault_proxy.add_rule(Rule("BatchWriteItem", action="unprocessed", table="replica"))
    puts = [{"PutRequest": {"Item": _item(i)}} for i in range(8)]

    response = _client(fault_proxy.url).batch_write_item(
        RequestItems={"replica": puts[:5], "other": puts[5:]}
    )

    assert response["UnprocessedItems"] == {"replica": puts[2:5]}
    assert sorted(scan_all(moto_url, "replica")) == ['{"id":{"S":"k0"}}', '{"id":{"S":"k1"}}']
    assert len(scan_all(moto_url, "other")) == 3
    assert fault_proxy.keys_count("BatchWriteItem", "replica") == 2
    assert fault_proxy.keys_count("BatchWriteItem", "other") == 3
    assert fault_proxy.counts("BatchWriteItem", "replica").unprocessed == 1


def test_batch_get_is_partly_forwarded_keeping_the_tables_read_options(
    fault_proxy: FaultProxy, moto_url: str
) -> None:
    create_table(moto_url, "primary")
    ddb = client(moto_url)
    for i in range(3):
        ddb.put_item(TableName="primary", Item=_item(i))
    fault_proxy.add_rule(Rule("BatchGetItem", action="unprocessed"))
    keys = [{"id": {"S": f"k{i}"}} for i in range(3)]
    request = {"Keys": keys, "ConsistentRead": True, "ProjectionExpression": "id"}
    proxied = _client(fault_proxy.url)

    response = proxied.batch_get_item(RequestItems={"primary": request})
    lone = proxied.batch_get_item(RequestItems={"primary": {"Keys": keys[:1]}})

    assert response["Responses"] == {"primary": keys[:1]}
    assert response["UnprocessedKeys"] == {"primary": {**request, "Keys": keys[1:]}}
    assert lone["UnprocessedKeys"] == {"primary": {"Keys": keys[:1]}}
    assert fault_proxy.keys_count("BatchGetItem", "primary") == 1
    assert fault_proxy.counts("BatchGetItem", "primary").forwarded == 1
    assert fault_proxy.counts("BatchGetItem", "primary").unprocessed == 2


def test_counts_batch_keys_per_table_until_reset(fault_proxy: FaultProxy, moto_url: str) -> None:
    create_table(moto_url, "primary")
    create_table(moto_url, "other")
    ddb = _client(fault_proxy.url)
    keys = [{"id": {"S": f"k{i}"}} for i in range(4)]
    ddb.batch_get_item(RequestItems={"primary": {"Keys": keys[:3]}, "other": {"Keys": keys}})
    ddb.batch_get_item(RequestItems={"primary": {"Keys": keys[3:]}})

    assert fault_proxy.keys_count("BatchGetItem", "primary") == 4
    assert fault_proxy.keys_count("BatchGetItem", "other") == 4
    assert fault_proxy.counts("BatchGetItem", "primary").forwarded == 2
    assert fault_proxy.counts("BatchGetItem", "other").forwarded == 1
    assert fault_proxy.counts("BatchGetItem").forwarded == 2
    fault_proxy.reset_counts()
    assert fault_proxy.keys_count("BatchGetItem", "primary") == 0
    assert fault_proxy.counts("BatchGetItem").forwarded == 0


def test_hold_blocks_a_call_from_another_thread_until_released(
    fault_proxy: FaultProxy, moto_url: str
) -> None:
    create_table(moto_url, "t")
    rule = fault_proxy.add_rule(Rule("PutItem", action="hold", first=1))
    ddb = _client(fault_proxy.url)
    writer = threading.Thread(target=ddb.put_item, kwargs={"TableName": "t", "Item": _item(1)})
    writer.start()

    rule.wait_held(1, timeout=5)
    ddb.put_item(TableName="t", Item=_item(2))  # not held: the rule holds the first only

    assert writer.is_alive() and rule.held == 1
    assert list(scan_all(moto_url, "t")) == ['{"id":{"S":"k2"}}']
    rule.release()
    writer.join(5)
    assert not writer.is_alive() and rule.held == 0
    assert len(scan_all(moto_url, "t")) == 2


def test_a_held_call_released_with_drop_never_reaches_upstream(
    fault_proxy: FaultProxy, moto_url: str
) -> None:
    create_table(moto_url, "t")
    rule = fault_proxy.add_rule(Rule("PutItem", action="hold", first=1))
    ddb = _client(fault_proxy.url)
    failed: list[BaseException] = []

    def write() -> None:
        try:
            ddb.put_item(TableName="t", Item=_item(1))
        except Exception as exc:
            failed.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    rule.wait_held(1, timeout=5)
    rule.release(drop=True)
    writer.join(10)

    assert not writer.is_alive() and len(failed) == 1  # the connection closed, no answer
    assert scan_all(moto_url, "t") == {}
    assert fault_proxy.counts("PutItem", "t").forwarded == 0


def test_wait_held_times_out_when_nothing_is_held(fault_proxy: FaultProxy) -> None:
    rule = fault_proxy.add_rule(Rule("PutItem", action="hold"))
    with pytest.raises(TimeoutError):
        rule.wait_held(1, timeout=0.05)


def test_delay_sleeps_before_forwarding(fault_proxy: FaultProxy, moto_url: str) -> None:
    create_table(moto_url, "t")
    fault_proxy.add_rule(Rule("GetItem", action="delay", delay=0.3))
    ddb = _client(fault_proxy.url)

    started = time.monotonic()
    ddb.get_item(TableName="t", Key={"id": {"S": "k"}})

    assert time.monotonic() - started >= 0.3
    assert fault_proxy.counts("GetItem", "t").delay == 1
    assert fault_proxy.counts("GetItem", "t").forwarded == 1


def test_rules_reject_contradictory_settings() -> None:
    with pytest.raises(ValueError, match="at most one"):
        Rule("PutItem", first=1, every=2)
    with pytest.raises(ValueError, match="unprocessed"):
        Rule("PutItem", action="unprocessed")
    with pytest.raises(ValueError, match="action"):
        Rule("PutItem", action="explode")


def test_rewritten_replies_drop_the_upstream_crc32() -> None:
    # moto sends no CRC32, so check the rewrite itself: botocore would reject a stale one.
    status, headers, body = _json_reply(200, [("x-amz-crc32", "123"), ("A", "b")], {"k": 1})
    assert (status, headers, body) == (200, [("A", "b")], b'{"k": 1}')
