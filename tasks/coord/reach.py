"""Reaching the servers: the coordination Redis, the result backend and the broker.

``check`` connects once to each, as the processes will (TLS options from ``tasks.core.tls``),
and turns a failure into one error naming the server, its URL (password masked) and the cause:

* ConfigurationError (exit 2): a certificate that does not verify, a password (or user) refused,
  a TLS handshake that fails, a TLS port spoken to in plain text.
* UnavailableError (exit 3): nothing answers (refused, timed out, no such host).

``fatal`` tells the same configuration failures apart from passing ones where a process would
otherwise retry (the producer's enqueue loop): retrying cannot help them.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

import redis
from kombu import Connection  # type: ignore[attr-defined]

from tasks.core.config import Settings, settings
from tasks.core.errors import ConfigurationError, ReplicatorError, UnavailableError
from tasks.core.tls import Endpoint

TIMEOUT = 5.0
# what the libraries say (their exception classes differ by version and transport), and what
# it means for the person who configured the URL
AUTH = (
    "invalid username-password",
    "invalid username or password",
    "wrongpass",
    "authentication required",
    "noauth",
    "access_refused",
    "login was refused",
)
CLOSED = (
    "connection closed by server",
    "connection reset by peer",
    "unexpectedly closed",
    "socket closed",
    "eof occurred",
)


def redis_client(endpoint: Endpoint, **options: object) -> redis.Redis:
    """A redis-py client for ``endpoint``, with its TLS options."""
    return redis.Redis.from_url(endpoint.url, **{**(endpoint.ssl or {}), **options})


def check(celery: bool = False, cfg: Settings | None = None) -> None:
    """Connect to the coordination Redis and, with ``celery`` (a process that sends tasks or
    runs them), to the broker and the result backend; raise on the first that fails (see the
    module's docstring). A URL shared by several roles is reached once."""
    cfg = cfg or settings()
    servers = [("Redis", cfg.redis)]
    if celery:
        servers += [("the broker", cfg.broker), ("the result backend", cfg.backend)]
    reached: set[str] = set()
    for what, endpoint in servers:
        if endpoint.url not in reached:
            reached.add(endpoint.url)
            check_one(what, endpoint)


def check_one(what: str, endpoint: Endpoint) -> None:
    try:
        _connect(endpoint)
    except Exception as exc:
        raise classify(exc, endpoint, f"{what} at {masked(endpoint.url)}") from exc


def _connect(endpoint: Endpoint) -> None:
    if endpoint.url.startswith(("amqp", "pyamqp")):
        tls = dict(endpoint.ssl) if endpoint.ssl is not None else False
        conn = Connection(endpoint.url, ssl=tls, connect_timeout=TIMEOUT)  # type: ignore[no-untyped-call]
        try:
            conn.connect()  # type: ignore[no-untyped-call]
        finally:
            conn.release()  # type: ignore[no-untyped-call]
        return
    client = redis_client(endpoint, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
    try:
        client.ping()
    finally:
        client.close()


def classify(exc: BaseException, endpoint: Endpoint, where: str) -> ReplicatorError:
    """The project's error for a failure to connect to ``endpoint`` (named ``where``):
    configuration or unreachable."""
    cause = fatal_cause(exc) or _closed_at_once(exc, endpoint) or _stalled(exc, endpoint)
    if cause:
        return ConfigurationError(f"cannot connect to {where}: {cause}")
    return UnavailableError(f"{where} is unreachable: {masked(_text(exc))}")


def fatal(exc: BaseException, where: str) -> ConfigurationError | None:
    """A ConfigurationError when ``exc``, met while working, is a failure no retry can mend (a
    certificate, a password); None for the rest (a server restarting, say)."""
    cause = fatal_cause(exc)
    return ConfigurationError(f"cannot connect to {where}: {cause}") if cause else None


def fatal_cause(exc: BaseException) -> str | None:
    """Why a connection failed for good, in words a user acts on; None when it may pass."""
    chain = list(_chain(exc))
    text = " | ".join(_text(e) for e in chain).lower()
    if "certificate verify failed" in text or any(
        isinstance(e, ssl.SSLCertVerificationError) for e in chain
    ):
        return (
            f"the server's certificate does not verify ({_reason(chain, 'certificate')}): give "
            "the CA that signed it in REPLICATOR_TLS_CA_FILE (or ssl_ca_certs in the URL)"
        )
    if any(isinstance(e, redis.AuthenticationError) for e in chain) or any(
        word in text for word in AUTH
    ):
        return "the server refused the password (or user name) given in the URL"
    handshake = [e for e in chain if isinstance(e, ssl.SSLError) and not _eof(e)]
    if handshake or "wrong_version_number" in text or "wrong version number" in text:
        return (
            f"the TLS handshake failed ({_reason(chain, 'ssl')}): is it a TLS port, and does "
            "the server accept this client (REPLICATOR_TLS_CERT_FILE)?"
        )
    return None


def _closed_at_once(exc: BaseException, endpoint: Endpoint) -> str | None:
    text = " | ".join(_text(e) for e in _chain(exc)).lower()
    if not any(word in text for word in CLOSED):
        return None
    if endpoint.ssl is None:
        return (
            "the server closed the connection at once: is it a TLS port spoken to in plain "
            "text? Use rediss:// or amqps:// for a TLS port"
        )
    return (
        "the server closed the TLS connection at once: does it want a client certificate "
        "(REPLICATOR_TLS_CERT_FILE and REPLICATOR_TLS_KEY_FILE, mutual TLS)?"
    )


def _stalled(exc: BaseException, endpoint: Endpoint) -> str | None:
    """A TLS handshake that timed out on a port that accepts connections: a plain port."""
    text = " | ".join(_text(e) for e in _chain(exc)).lower()
    if endpoint.ssl is None or ("timeout" not in text and "timed out" not in text):
        return None
    parts = urlsplit(endpoint.url)
    try:
        socket.create_connection((parts.hostname or "localhost", parts.port or 0), TIMEOUT).close()
    except OSError:
        return None
    return (
        f"the server accepts connections but no TLS handshake within {TIMEOUT:g} s: is it a "
        "plain (non-TLS) port? Use redis:// or amqp:// for a plain port"
    )


def masked(url: str) -> str:
    """The URL with its password replaced by *** (for messages and logs)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, _, tail = rest.partition("@")
    user, colon, _ = credentials.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{tail}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _reason(chain: list[BaseException], marker: str) -> str:
    for exc in chain:
        if marker in _text(exc).lower():
            return masked(_text(exc)).strip().rstrip(".")
    return masked(_text(chain[0]))


def _eof(exc: ssl.SSLError) -> bool:
    """A TLS connection cut (a server going away, or refusing this client): not a handshake
    that failed by itself."""
    return isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError) or "eof" in str(exc).lower()
