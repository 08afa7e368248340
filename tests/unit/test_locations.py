from __future__ import annotations

import pytest

from tasks.core.errors import ConfigurationError, InvalidInputError
from tasks.core.locations import TableLocation, parse_s3, parse_table


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("us-east-1/orders", TableLocation("orders", "us-east-1")),
        ("us-gov-west-1/a.b-c_d", TableLocation("a.b-c_d", "us-gov-west-1")),
        ("localhost:4567/orders", TableLocation("orders", "eu-west-1", "http://localhost:4567")),
        ("127.0.0.1:8000/t-1", TableLocation("t-1", "eu-west-1", "http://127.0.0.1:8000")),
        ("http://dynamo.local/orders", TableLocation("orders", "eu-west-1", "http://dynamo.local")),
        (
            "https://h.example:8443/orders",
            TableLocation("orders", "eu-west-1", "https://h.example:8443"),
        ),
        ("local/orders", TableLocation("orders", "eu-west-1", "http://endpoint:1")),
    ],
)
def test_valid_locations(text: str, expected: TableLocation) -> None:
    env = {"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_DYNAMODB": "http://endpoint:1"}
    assert parse_table(text, env) == expected


def test_endpoint_region_defaults_to_us_east_1() -> None:
    assert parse_table("localhost:4567/orders", {}).region == "us-east-1"


def test_round_trip_through_str() -> None:
    for text in ("us-east-1/orders", "http://localhost:4567/orders"):
        assert str(parse_table(text, {})) == text


@pytest.mark.parametrize(
    "text",
    [
        "orders",
        "us-east-1/",
        "nowhere/orders",
        "localhost:99999/orders",
        "ftp://h/orders",
        "http://h/a/b",
        "us-east-1/ab",
        "us-east-1/bad name",
        "http://h:x/orders",
        "",
    ],
)
def test_invalid_locations_say_what_is_expected(text: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid table location"):
        parse_table(text, {})


def test_local_region_needs_an_endpoint() -> None:
    with pytest.raises(ConfigurationError, match="AWS_ENDPOINT_URL_DYNAMODB"):
        parse_table("local/orders", {})


def test_s3_locations() -> None:
    loc = parse_s3("s3://my-bucket/some/prefix/")
    assert (loc.bucket, loc.prefix) == ("my-bucket", "some/prefix")
    assert loc.key("table", "id") == "some/prefix/table/id"
    assert parse_s3("s3://my-bucket").key("t") == "t"
    for bad in ("s3:/x", "http://bucket/x", "s3://Bad_Bucket/x", "s3://a/x", "s3://a..b/x"):
        with pytest.raises(InvalidInputError, match="invalid S3 location"):
            parse_s3(bad)
