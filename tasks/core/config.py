"""One frozen settings object, built once per process from the environment plus flags.

Every setting any process reads lives here, the Celery and metrics ones included; nothing else
reads ``os.environ``. Problems are collected and reported together in one ConfigurationError.

``settings()`` is the one accessor: the settings a command installed (``install``, after
parsing its flags, which win over the environment) or, the first time it is called, those read
from the environment. What is built from the settings (AWS clients, the Redis connection, table
descriptions) registers with ``on_change`` and is dropped when other settings are installed.
Table locations are parsed here too (``Settings.table``), with the process's environment, so
that ``HOST:PORT/TABLE`` takes ``AWS_REGION`` and ``local/TABLE`` the DynamoDB endpoint.

Endpoints are read the way boto3 reads them: ``AWS_ENDPOINT_URL_<SERVICE ID>`` for one service
(``AWS_ENDPOINT_URL_DYNAMODB``, ``AWS_ENDPOINT_URL_DYNAMODB_STREAMS``, ``AWS_ENDPOINT_URL_KINESIS``,
``AWS_ENDPOINT_URL_S3``, ...), then ``AWS_ENDPOINT_URL`` for every service, none of them when
``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is true. ``tasks.aws.clients`` decides how they combine
with a table location's own endpoint.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from tasks.core import tls as tls_config
from tasks.core.errors import ConfigurationError
from tasks.core.locations import PRIMARY, Table, TableLocation, parse_table
from tasks.core.tls import Endpoint, Tls, endpoint

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")
# boto3's client name -> the service id in its endpoint variable (AWS_ENDPOINT_URL_<ID>)
ENDPOINT_SERVICES = {
    "dynamodb": "DYNAMODB",
    "dynamodbstreams": "DYNAMODB_STREAMS",
    "kinesis": "KINESIS",
    "s3": "S3",
    "sts": "STS",
}
SIDES = ("primary", "replica", "s3")
# A message's keys go to Redis in one script call per step (tasks.coord.guard), which unpacks up
# to two values per key onto Lua's stack (8,000 slots); 1,000 keys also take ~0.3 s to replicate.
MAX_KEYS_PER_MESSAGE = 1000
UNSIGNED = frozenset({"metrics_port"})  # may be 0 (off); every other number must be positive


@dataclass(frozen=True)
class SideCredentials:
    """How one side (primary, replica, s3) authenticates: a profile and/or a role to assume."""

    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = None


@dataclass(frozen=True)
class Settings:
    redis_url: str = DEFAULT_REDIS_URL
    namespace: str = "replicator"
    default_region: str = "us-east-1"
    credentials: Mapping[str, SideCredentials] = field(default_factory=dict)
    # endpoints configured per service (boto3's client names), and for all ("*")
    endpoints: Mapping[str, str] = field(default_factory=dict)
    # botocore's own retries (standard mode) for throttling and 5xx, per request
    aws_max_attempts: int = 8
    aws_connect_timeout: float = 5.0
    aws_read_timeout: float = 30.0
    # our retries of UnprocessedKeys / UnprocessedItems inside one task
    batch_max_attempts: int = 8
    backoff_base: float = 0.05
    backoff_cap: float = 5.0
    # The one retry policy of every task (tasks.core.retry): attempts of a failing key before it
    # is dead-lettered, the countdown between attempts, and how long a segment may keep failing
    # without progress before it is marked failed
    task_max_attempts: int = 5
    task_backoff_base: float = 1.0
    task_backoff_cap: float = 60.0
    segment_retry_window: float = 60.0
    # how many read-write rounds a key gets when another task touched it meanwhile
    guard_max_rounds: int = 5
    # keys per replicate message (the task reads them 100 and writes them 25 at a time); the
    # replication benchmark: CPU per key fell by a quarter from 100 to 500, little beyond
    keys_per_message: int = 500
    # batch requests of one call (a message's reads, its writes) in flight at once: a replica in
    # another region answers in tens of ms, and a message of 500 keys is 5 reads and 20 writes
    requests_in_flight: int = 8
    # seconds after which a key marked pending (waiting in the queue) may be enqueued again
    pending_ttl: float = 300.0
    # Celery: the broker (RabbitMQ or Redis) and the results (Redis)
    broker_url: str = DEFAULT_REDIS_URL
    result_backend: str = DEFAULT_REDIS_URL
    # Redis as broker: seconds after which a message no live worker holds is delivered again
    # (workers renew the messages they hold: worker.visibility), and how often workers look
    visibility_timeout: int = 30
    restore_interval: int = 5
    # RabbitMQ as broker: the AMQP heartbeat timeout of a worker's connection; the broker drops a
    # silent connection (a frozen worker, a machine gone) and requeues its messages after two
    # to three timeouts
    broker_heartbeat: int = 2
    # the Prometheus endpoint of a worker (0: none)
    metrics_port: int = 0
    metrics_address: str = "0.0.0.0"
    # TLS of rediss:// and amqps:// URLs (tasks.core.tls): CA, client certificate, verification
    tls: Tls = field(default_factory=Tls)
    # the environment the settings were read from (table locations, child processes)
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def broker_kind(self) -> str:
        """``amqp`` (RabbitMQ) or ``redis``: what ``broker_url`` points at."""
        return broker_kind(self.broker_url)

    @property
    def broker(self) -> Endpoint:
        """The broker's URL as clients connect to it, with its TLS options."""
        return endpoint(self.broker_url, self.tls, "CELERY_BROKER_URL")

    @property
    def backend(self) -> Endpoint:
        """The result backend's URL as clients connect to it, with its TLS options."""
        return endpoint(self.result_backend, self.tls, "CELERY_RESULT_BACKEND")

    @property
    def redis(self) -> Endpoint:
        """The coordination Redis's URL as clients connect to it, with its TLS options."""
        return endpoint(self.redis_url, self.tls, "REPLICATOR_REDIS_URL")

    def side(self, name: str) -> SideCredentials:
        return self.credentials.get(name, SideCredentials())

    def service_endpoint(self, service: str) -> str | None:
        """The endpoint configured for this one service (``AWS_ENDPOINT_URL_<SERVICE>``)."""
        return self.endpoints.get(service)

    def global_endpoint(self) -> str | None:
        """The endpoint configured for every service (``AWS_ENDPOINT_URL``)."""
        return self.endpoints.get("*")

    def key(self, *parts: str) -> str:
        """A Redis key in the project's namespace."""
        return ":".join((self.namespace, *parts))

    def location(self, text: str) -> TableLocation:
        """Parse a table location with this process's region and endpoint settings."""
        return parse_table(text, self.environ)

    def table(self, text: str, side: str = PRIMARY) -> Table:
        """A table handle: the parsed location, reached with ``side``'s credentials."""
        return Table(self.location(text), side)

    def with_overrides(self, **overrides: Any) -> Settings:
        values = {k: v for k, v in overrides.items() if v is not None}
        return _validated(replace(self, **values))


_INT_FIELDS = {
    "aws_max_attempts": "REPLICATOR_AWS_MAX_ATTEMPTS",
    "batch_max_attempts": "REPLICATOR_BATCH_MAX_ATTEMPTS",
    "task_max_attempts": "REPLICATOR_TASK_MAX_ATTEMPTS",
    "guard_max_rounds": "REPLICATOR_GUARD_MAX_ROUNDS",
    "keys_per_message": "REPLICATOR_KEYS_PER_MESSAGE",
    "requests_in_flight": "REPLICATOR_REQUESTS_IN_FLIGHT",
    "visibility_timeout": "REPLICATOR_VISIBILITY_TIMEOUT",
    "restore_interval": "REPLICATOR_RESTORE_INTERVAL",
    "broker_heartbeat": "REPLICATOR_BROKER_HEARTBEAT",
    "metrics_port": "REPLICATOR_METRICS_PORT",
}
_FLOAT_FIELDS = {
    "aws_connect_timeout": "REPLICATOR_AWS_CONNECT_TIMEOUT",
    "aws_read_timeout": "REPLICATOR_AWS_READ_TIMEOUT",
    "backoff_base": "REPLICATOR_BACKOFF_BASE",
    "backoff_cap": "REPLICATOR_BACKOFF_CAP",
    "task_backoff_base": "REPLICATOR_TASK_BACKOFF_BASE",
    "task_backoff_cap": "REPLICATOR_TASK_BACKOFF_CAP",
    "segment_retry_window": "REPLICATOR_SEGMENT_RETRY_WINDOW",
    "pending_ttl": "REPLICATOR_PENDING_TTL",
}


def broker_kind(url: str) -> str:
    """``amqp`` for a RabbitMQ URL, ``redis`` for anything else (validation rejects the rest)."""
    return "amqp" if url.startswith(AMQP_SCHEMES) else "redis"


def from_env(env: Mapping[str, str]) -> Settings:
    """Build settings from an environment mapping; raise one error listing every problem.

    Redis holds the coordination state and the results whatever the broker: with a Redis
    broker both default to the broker's URL, with RabbitMQ to the default Redis URL.
    """
    problems: list[str] = []
    broker = env.get("CELERY_BROKER_URL") or DEFAULT_REDIS_URL
    redis_url = env.get("REPLICATOR_REDIS_URL") or (
        broker if broker_kind(broker) == "redis" else DEFAULT_REDIS_URL
    )
    values: dict[str, Any] = {
        "environ": dict(env),
        "redis_url": redis_url,
        "broker_url": broker,
        "result_backend": env.get("CELERY_RESULT_BACKEND")
        or (broker if broker_kind(broker) == "redis" else redis_url),
        "metrics_address": env.get("REPLICATOR_METRICS_ADDRESS") or "0.0.0.0",
        "namespace": env.get("REPLICATOR_NAMESPACE", "replicator"),
        "default_region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        "endpoints": _endpoints(env),
        "credentials": {
            side: SideCredentials(
                profile=env.get(f"REPLICATOR_{side.upper()}_PROFILE") or None,
                role_arn=env.get(f"REPLICATOR_{side.upper()}_ROLE_ARN") or None,
                external_id=env.get(f"REPLICATOR_{side.upper()}_EXTERNAL_ID") or None,
            )
            for side in SIDES
        },
    }
    try:
        values["tls"] = tls_config.from_env(env)
    except ConfigurationError as exc:
        problems.append(str(exc))
    for name, var in {**_INT_FIELDS, **_FLOAT_FIELDS}.items():
        if env.get(var, "").strip():
            kind = int if name in _INT_FIELDS else float
            try:
                values[name] = kind(env[var].strip())
            except ValueError:
                problems.append(f"{var}={env[var]!r} is not a number")
    if problems:
        raise ConfigurationError("; ".join(problems))
    return _validated(Settings(**values))


def _endpoints(env: Mapping[str, str]) -> dict[str, str]:
    if env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() == "true":
        return {}
    found = {"*": env.get("AWS_ENDPOINT_URL", "").strip()}
    for service, name in ENDPOINT_SERVICES.items():
        found[service] = env.get(f"AWS_ENDPOINT_URL_{name}", "").strip()
    return {service: url for service, url in found.items() if url}


def _validated(settings: Settings) -> Settings:
    problems = [
        f"{f.name} must be positive"
        for f in fields(settings)
        if f.type in ("int", "float") and f.name not in UNSIGNED and getattr(settings, f.name) <= 0
    ]
    if not 0 <= settings.metrics_port <= 65535:
        problems.append(f"REPLICATOR_METRICS_PORT={settings.metrics_port} is not a port number")
    problems += _url_problems(settings)
    if not 1 <= settings.keys_per_message <= MAX_KEYS_PER_MESSAGE:
        problems.append(f"keys_per_message must be between 1 and {MAX_KEYS_PER_MESSAGE}")
    for base, cap in (("backoff_base", "backoff_cap"), ("task_backoff_base", "task_backoff_cap")):
        if getattr(settings, base) > getattr(settings, cap):
            problems.append(f"{base} must not exceed {cap}")
    if problems:
        raise ConfigurationError("; ".join(problems))
    return settings


def _url_problems(settings: Settings) -> list[str]:
    problems = []
    if not settings.redis_url.startswith(REDIS_SCHEMES):
        problems.append(
            "REPLICATOR_REDIS_URL must start with redis://, rediss:// (TLS) or unix://, "
            f"not {_scheme(settings.redis_url)!r}"
        )
    if not settings.broker_url.startswith(REDIS_SCHEMES + AMQP_SCHEMES):
        problems.append(
            "CELERY_BROKER_URL must start with amqp:// or amqps:// (RabbitMQ, amqps: TLS), "
            f"or redis:// or rediss:// (Redis, rediss: TLS), not {_scheme(settings.broker_url)!r}"
        )
    tls_problems = settings.tls.problems()
    if problems or tls_problems:
        return problems + tls_problems
    for name in ("broker", "backend", "redis"):
        try:
            getattr(settings, name)
        except ConfigurationError as exc:
            problems.append(str(exc))
    return problems


def _scheme(url: str) -> str:
    """A URL's scheme, or its first characters (never a password)."""
    scheme, found, _ = url.partition("://")
    return f"{scheme}://" if found else url[:6]


_lock = threading.Lock()
_current: list[Settings] = []
_listeners: list[Callable[[], None]] = []


def settings() -> Settings:
    """The process's settings: installed by a command, or read from the environment once."""
    with _lock:
        if not _current:
            _current.append(from_env(os.environ))
        return _current[0]


def install(value: Settings) -> None:
    """Make ``value`` the process's settings (commands call this once, after parsing flags)."""
    _replace([value])


def reset() -> None:
    """Forget the settings: the next ``settings()`` reads the environment again (tests)."""
    _replace([])


def on_change(forget: Callable[[], None]) -> None:
    """Call ``forget`` whenever other settings are installed (to drop what was built from them)."""
    _listeners.append(forget)


def _replace(value: list[Settings]) -> None:
    with _lock:
        _current[:] = value
    for forget in _listeners:
        forget()
