"""Where a table or a backup lives: parsing of the location strings every command takes.

Table locations::

    us-east-1/orders                  a table in an AWS region
    localhost:4567/orders             a plain-HTTP local endpoint (as the original accepted)
    http(s)://host[:port]/orders      any endpoint URL
    local/orders                      the endpoint in AWS_ENDPOINT_URL(_DYNAMODB)

For endpoint locations the region comes from AWS_REGION / AWS_DEFAULT_REGION (us-east-1 when
unset), or from a ``?region=NAME`` suffix. ``TableLocation.spec`` writes a location so that any
process parses it back to the same table whatever its environment: that is the form messages and
job records carry; ``str()`` is the form people read. S3 locations are ``s3://bucket/prefix``.

A ``Table`` is the handle the DynamoDB access takes: a location and the side (``primary`` or
``replica``) whose credentials reach it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tasks.core.errors import ConfigurationError, InvalidInputError

DEFAULT_REGION = "us-east-1"
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_TABLE = re.compile(r"^[A-Za-z0-9_.\-]{3,255}$")
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):(\d{1,5})$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_LOCATION_HELP = (
    "expected REGION/TABLE, HOST:PORT/TABLE, http(s)://HOST[:PORT]/TABLE or local/TABLE "
    "(the endpoint in AWS_ENDPOINT_URL_DYNAMODB or AWS_ENDPOINT_URL)"
)
PRIMARY, REPLICA, S3 = "primary", "replica", "s3"  # whose credentials reach a resource


@dataclass(frozen=True)
class TableLocation:
    """A DynamoDB table: its name, its region and, for local endpoints, the endpoint URL."""

    table: str
    region: str
    endpoint_url: str | None = None

    def __str__(self) -> str:
        if self.endpoint_url:
            return f"{self.endpoint_url}/{self.table}"
        return f"{self.region}/{self.table}"

    @property
    def spec(self) -> str:
        """The location with its region spelled out: parses back to this location anywhere."""
        return f"{self}?region={self.region}" if self.endpoint_url else str(self)


@dataclass(frozen=True)
class Table:
    """A table handle: where the table is and which side's credentials reach it; a bulk job's
    handle also carries the meter its calls' consumed capacity goes to (``tasks.aws.consumed``),
    which takes no part in comparing handles."""

    location: TableLocation
    side: str = PRIMARY
    meter: Any = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.location.table

    def __str__(self) -> str:
        return str(self.location)


@dataclass(frozen=True)
class S3Location:
    """An S3 bucket and a key prefix (without a trailing slash; may be empty)."""

    bucket: str
    prefix: str = ""

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def child(self, *parts: str) -> S3Location:
        return S3Location(self.bucket, self.key(*parts))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def shown(spec: str) -> str:
    """How people see a location that a message or job record carries (``spec``)."""
    return spec.partition("?region=")[0]


def parse_table(text: str, env: Mapping[str, str]) -> TableLocation:
    """Parse a table location with the process's environment ``env`` (region, endpoint).

    Raise InvalidInputError naming what is wrong.
    """
    if not isinstance(text, str) or "/" not in text:
        raise InvalidInputError(f"invalid table location {text!r}: {_LOCATION_HELP}")
    text, region = _region_suffix(text)
    if region:
        env = {**env, "AWS_REGION": region}
    if "://" in text:
        return _parse_url(text, env)
    where, table = text.rsplit("/", 1)
    _check_table(text, table)
    if _REGION.match(where):
        return TableLocation(table=table, region=where)
    if where == "local":
        endpoint = env.get("AWS_ENDPOINT_URL_DYNAMODB") or env.get("AWS_ENDPOINT_URL")
        if not endpoint:
            raise ConfigurationError(
                f"table location {text!r} uses region 'local': set AWS_ENDPOINT_URL_DYNAMODB "
                "or write the endpoint (HOST:PORT/TABLE)"
            )
        return TableLocation(table=table, region=_env_region(env), endpoint_url=endpoint)
    if _HOST_PORT.match(where) and 0 < int(where.rsplit(":", 1)[1]) < 65536:
        return TableLocation(table=table, region=_env_region(env), endpoint_url=f"http://{where}")
    raise InvalidInputError(f"invalid table location {text!r}: {_LOCATION_HELP}")


def _region_suffix(text: str) -> tuple[str, str | None]:
    """``LOCATION?region=NAME`` -> (LOCATION, NAME); other locations unchanged."""
    where, mark, query = text.partition("?")
    if not mark:
        return text, None
    regions = parse_qs(query).get("region", [])
    if len(regions) != 1 or not _REGION.match(regions[0]) or set(parse_qs(query)) != {"region"}:
        raise InvalidInputError(f"invalid table location {text!r}: the only suffix is ?region=NAME")
    return where, regions[0]


def _parse_url(text: str, env: Mapping[str, str]) -> TableLocation:
    parts = urlsplit(text)
    table = parts.path.strip("/")
    if parts.scheme not in ("http", "https") or not parts.hostname or "/" in table:
        raise InvalidInputError(f"invalid table location {text!r}: {_LOCATION_HELP}")
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidInputError(f"invalid table location {text!r}: bad port") from exc
    _check_table(text, table)
    netloc = parts.netloc if port is None else f"{parts.netloc.rsplit(':', 1)[0]}:{port}"
    return TableLocation(
        table=table, region=_env_region(env), endpoint_url=f"{parts.scheme}://{netloc}"
    )


def _check_table(text: str, table: str) -> None:
    if not _TABLE.match(table):
        raise InvalidInputError(
            f"invalid table location {text!r}: table names are 3-255 characters of "
            "letters, digits, '_', '-' and '.'"
        )


def _env_region(env: Mapping[str, str]) -> str:
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def parse_s3(text: str) -> S3Location:
    """Parse ``s3://bucket[/prefix]``; raise InvalidInputError naming what is wrong."""
    if not isinstance(text, str) or not text.startswith("s3://"):
        raise InvalidInputError(f"invalid S3 location {text!r}: expected s3://BUCKET/PREFIX")
    bucket, _, prefix = text[len("s3://") :].partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise InvalidInputError(f"invalid S3 location {text!r}: {bucket!r} is not a bucket name")
    return S3Location(bucket=bucket, prefix=prefix.strip("/"))
