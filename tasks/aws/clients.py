"""boto3 clients, created once per process and side, and reused.

Credentials come from boto3's own chain; each side (primary, replica, s3) may add a profile and/or
a role to assume (cross-account), refreshed automatically. Endpoint locations without any
credentials get static placeholder ones, as local endpoints do not check them.

Where each service's requests go (the settings read the variables, ``tasks.core.config``):

* DynamoDB: the table location's endpoint (``HOST:PORT/TABLE``, ``http(s)://...``,
  ``local/TABLE``); for ``REGION/TABLE``, ``AWS_ENDPOINT_URL_DYNAMODB``, then
  ``AWS_ENDPOINT_URL``, then the region's AWS endpoint.
* DynamoDB Streams: ``AWS_ENDPOINT_URL_DYNAMODB_STREAMS``, then the table's endpoint (the stream
  belongs to the table: its ARN comes from the table's own DescribeTable), then
  ``AWS_ENDPOINT_URL``, then the region's.
* Kinesis: ``AWS_ENDPOINT_URL_KINESIS``, then ``AWS_ENDPOINT_URL``, then the table's endpoint
  (a local emulator that serves every service on one port), then the region's. A Kinesis stream
  is not part of the table, so a setting for Kinesis always wins over the table's location.
* S3: ``AWS_ENDPOINT_URL_S3``, then ``AWS_ENDPOINT_URL``. (STS, for the roles to assume, is
  left to boto3, which reads the same variables.)

Every client takes the table's region (S3: the configured one).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    Credentials,
    DeferredRefreshableCredentials,
)

from tasks.core import config
from tasks.core.config import Settings, SideCredentials, settings
from tasks.core.errors import ConfigurationError
from tasks.core.locations import PRIMARY, REPLICA, S3, Table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_s3 import S3Client

_lock = threading.Lock()
_clients: dict[tuple[Any, ...], Any] = {}
# Sessions hold no connections, only credentials and the service models they loaded (most of
# the cost of a first client): kept across forks, so that pool processes inherit them warm.
_sessions: dict[tuple[SideCredentials, str], boto3.Session] = {}


def _forget_clients() -> None:
    """A forked child (Celery's prefork pool) must not share its parent's connections."""
    _clients.clear()


def _forget_all() -> None:
    _clients.clear()
    _sessions.clear()


os.register_at_fork(after_in_child=_forget_clients)
config.on_change(_forget_all)


def preload() -> None:
    """Load both sides' sessions and DynamoDB's model now: a worker's main process does this
    before it starts its pool processes (clients are built, no request is made)."""
    cfg = settings()
    for side in (PRIMARY, REPLICA):
        _client("dynamodb", side, cfg.default_region, endpoint("dynamodb"))


def botocore_config(cfg: Settings) -> Config:
    return Config(
        retries={"mode": "standard", "max_attempts": cfg.aws_max_attempts},
        connect_timeout=cfg.aws_connect_timeout,
        read_timeout=cfg.aws_read_timeout,
        max_pool_connections=64,
        tcp_keepalive=True,
    )


def _session(creds: SideCredentials, region: str) -> boto3.Session:
    """One session per side's credentials and region, created once per process and settings."""
    found = _sessions.get((creds, region))
    if found is None:
        found = _sessions[(creds, region)] = _new_session(creds, region)
    return found


def _new_session(creds: SideCredentials, region: str) -> boto3.Session:
    try:
        base = boto3.Session(profile_name=creds.profile, region_name=region)
    except Exception as exc:  # botocore raises ProfileNotFound and friends
        raise ConfigurationError(f"AWS profile {creds.profile!r}: {exc}") from exc
    if not creds.role_arn:
        return base
    return _assumed_role_session(base, creds, region)


def _assumed_role_session(
    base: boto3.Session, creds: SideCredentials, region: str
) -> boto3.Session:
    extra = {"ExternalId": creds.external_id} if creds.external_id else {}
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=base._session.create_client,
        source_credentials=base.get_credentials(),
        role_arn=creds.role_arn or "",
        extra_args={"RoleSessionName": "dynamodb-replicator", **extra},
    )
    core = botocore.session.Session()
    core._credentials = DeferredRefreshableCredentials(  # type: ignore[attr-defined]
        method="assume-role", refresh_using=fetcher.fetch_credentials
    )
    return boto3.Session(botocore_session=core, region_name=region)


def _client(
    service: str, side: str, region: str, endpoint_url: str | None, purpose: str | None = None
) -> Any:
    cfg = settings()
    key = (service, side, region, endpoint_url, cfg.side(side), purpose)
    with _lock:
        client = _clients.get(key)
        if client is None:
            session = _session(cfg.side(side), region)
            config_ = botocore_config(cfg)
            if purpose:  # the requests say what they are for (in CloudTrail, at a proxy)
                config_ = config_.merge(Config(user_agent_extra=f"replicator/{purpose}"))
            kwargs: dict[str, Any] = {"config": config_, "endpoint_url": endpoint_url}
            client = session.client(service, **kwargs)  # type: ignore[call-overload]
            if session.get_credentials() is None and _is_local(client.meta.endpoint_url):
                placeholder = Credentials("local", "local")
                kwargs["aws_access_key_id"] = placeholder.access_key
                kwargs["aws_secret_access_key"] = placeholder.secret_key
                client = session.client(service, **kwargs)  # type: ignore[call-overload]
            _clients[key] = client
    return client


def _is_local(endpoint_url: str) -> bool:
    return not endpoint_url.rstrip("/").endswith((".amazonaws.com", ".amazonaws.com.cn"))


def endpoint(service: str, table: Table | None = None) -> str | None:
    """Where ``service``'s requests for ``table`` go (None: boto3's default for the region)."""
    cfg, own = settings(), table.location.endpoint_url if table else None
    if service == "dynamodb":
        order = [own, cfg.service_endpoint(service), cfg.global_endpoint()]
    elif service == "dynamodbstreams":
        order = [cfg.service_endpoint(service), own, cfg.global_endpoint()]
    else:
        order = [cfg.service_endpoint(service), cfg.global_endpoint(), own]
    return next((url for url in order if url), None)


def dynamodb(table: Table, purpose: str | None = None) -> DynamoDBClient:
    """The client for the table's side and endpoint; a ``purpose`` (``permission-check``) gets a
    client of its own whose User-Agent names it."""
    client: DynamoDBClient = _client(
        "dynamodb", table.side, table.location.region, endpoint("dynamodb", table), purpose
    )
    return client


def dynamodbstreams(table: Table, purpose: str | None = None) -> DynamoDBStreamsClient:
    """The client for the table's DynamoDB stream (the table's region)."""
    client: DynamoDBStreamsClient = _client(
        "dynamodbstreams",
        table.side,
        table.location.region,
        endpoint("dynamodbstreams", table),
        purpose,
    )
    return client


def kinesis(table: Table, purpose: str | None = None) -> KinesisClient:
    """The client for a Kinesis stream of the table's changes (the table's region)."""
    client: KinesisClient = _client(
        "kinesis", table.side, table.location.region, endpoint("kinesis", table), purpose
    )
    return client


def s3(region: str | None = None, purpose: str | None = None) -> S3Client:
    """The S3 client (the configured region unless told otherwise)."""
    region = region or settings().default_region
    client: S3Client = _client("s3", S3, region, endpoint("s3"), purpose)
    return client
