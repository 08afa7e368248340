"""TLS for the broker, the result backend and the coordination Redis: one configuration, three
clients that agree.

TLS is asked for by the URL's scheme (``rediss://``, ``amqps://``); how it verifies comes from
the settings (``REPLICATOR_TLS_CA_FILE``, ``REPLICATOR_TLS_CERT_FILE`` / ``REPLICATOR_TLS_KEY_FILE``
for mutual TLS, ``REPLICATOR_TLS_VERIFY``, on by default), overridden per URL by its ``ssl_*``
query options (``ssl_cert_reqs``, ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``), the
ones Celery documents for Redis URLs; the server's name is checked whenever its certificate is.
``endpoint`` turns a URL into the URL without those options and the client options of its kind:
redis-py's keyword arguments (also Celery's ``broker_use_ssl`` / ``redis_backend_use_ssl`` for
Redis) or py-amqp's ``ssl`` options (Celery's ``broker_use_ssl`` for RabbitMQ). A TLS URL
always verifies the server's certificate and name unless verification is switched off
explicitly: never a silent fallback.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tasks.core.errors import ConfigurationError

TLS_SCHEMES = ("rediss", "amqps")
CERT_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
# a URL's ssl_* query option -> the setting it overrides
QUERY_OPTIONS = {
    "ssl_cert_reqs": "verify",
    "ssl_ca_certs": "ca_file",
    "ssl_certfile": "cert_file",
    "ssl_keyfile": "key_file",
}


@dataclass(frozen=True)
class Tls:
    """How TLS connections verify the server and present a client certificate."""

    ca_file: str | None = None  # a CA bundle (PEM); None: the system's CAs
    cert_file: str | None = None  # a client certificate (mutual TLS), with key_file
    key_file: str | None = None
    verify: ssl.VerifyMode = ssl.CERT_REQUIRED

    @property
    def check_hostname(self) -> bool:
        """The server's name is checked whenever its certificate is."""
        return self.verify != ssl.CERT_NONE

    def problems(self) -> list[str]:
        found = []
        if bool(self.cert_file) != bool(self.key_file):
            found.append(
                "REPLICATOR_TLS_CERT_FILE and REPLICATOR_TLS_KEY_FILE go together (mutual TLS)"
            )
        for name, path in (("CA", self.ca_file), ("CERT", self.cert_file), ("KEY", self.key_file)):
            if path and not _readable(path):
                found.append(f"REPLICATOR_TLS_{name}_FILE={path!r} cannot be read")
        return found


@dataclass(frozen=True)
class Endpoint:
    """A URL as a client connects to it: without ssl_* options, and its TLS client options."""

    url: str
    ssl: Mapping[str, Any] | None  # None: plain TCP

    @property
    def host(self) -> str:
        """``host:port`` (never the credentials), for messages."""
        return host(self.url)


def host(url: str) -> str:
    """A URL's ``host:port`` (or host, or socket path), without its credentials."""
    parts = urlsplit(url)
    name = parts.hostname or parts.path or "localhost"
    return f"{name}:{parts.port}" if parts.port else name


def from_env(env: Mapping[str, str]) -> Tls:
    """The TLS settings of REPLICATOR_TLS_*; ConfigurationError for a verify value it does not
    understand."""
    verify = env.get("REPLICATOR_TLS_VERIFY", "").strip().lower()
    if verify and verify not in TRUE + FALSE:
        raise ConfigurationError(f"REPLICATOR_TLS_VERIFY={verify!r} must be true or false")
    return Tls(
        ca_file=env.get("REPLICATOR_TLS_CA_FILE") or None,
        cert_file=env.get("REPLICATOR_TLS_CERT_FILE") or None,
        key_file=env.get("REPLICATOR_TLS_KEY_FILE") or None,
        verify=ssl.CERT_NONE if verify in FALSE else ssl.CERT_REQUIRED,
    )


def endpoint(url: str, tls: Tls, what: str) -> Endpoint:
    """``url`` without its ssl_* options, and the client options of a TLS URL (``what`` names
    the URL in errors). ConfigurationError for ssl_* options that are not understood, or given
    to a plain URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = {k: v for k, v in query if k.startswith("ssl_")}
    if not given and parts.scheme not in TLS_SCHEMES:
        return Endpoint(url, None)
    rest = [(k, v) for k, v in query if k not in given]
    plain = urlunsplit(parts._replace(query=urlencode(rest)))
    if parts.scheme not in TLS_SCHEMES:
        raise ConfigurationError(
            f"{what} has TLS options ({', '.join(sorted(given))}) but the scheme "
            f"{parts.scheme}:// is not TLS: use rediss:// or amqps://"
        )
    effective = _overridden(tls, given, what)
    options = _amqp(effective) if parts.scheme == "amqps" else _redis(effective)
    return Endpoint(plain, options)


def _overridden(tls: Tls, given: Mapping[str, str], what: str) -> Tls:
    unknown = sorted(set(given) - set(QUERY_OPTIONS))
    if unknown:
        raise ConfigurationError(
            f"{what}: unknown TLS option {', '.join(unknown)}; the URL takes "
            f"{', '.join(QUERY_OPTIONS)}, or set REPLICATOR_TLS_CA_FILE, REPLICATOR_TLS_CERT_FILE, "
            "REPLICATOR_TLS_KEY_FILE and REPLICATOR_TLS_VERIFY"
        )
    values: dict[str, Any] = {}
    for option, value in given.items():
        values[QUERY_OPTIONS[option]] = _parsed(option, value, what)
    merged = replace(tls, **values)
    problems = merged.problems()
    if problems:
        raise ConfigurationError(f"{what}: {'; '.join(problems)}")
    return merged


def _parsed(option: str, value: str, what: str) -> Any:
    if option == "ssl_cert_reqs":
        mode = CERT_REQS.get(value.lower().removeprefix("cert_"))
        if mode is None:
            raise ConfigurationError(f"{what}: ssl_cert_reqs must be required, optional or none")
        return mode
    return value or None


def _redis(tls: Tls) -> dict[str, Any]:
    """redis-py's SSL keyword arguments (Celery takes them as they are for Redis)."""
    options = {
        "ssl_cert_reqs": tls.verify,
        "ssl_check_hostname": tls.check_hostname,
        "ssl_ca_certs": tls.ca_file,
        "ssl_certfile": tls.cert_file,
        "ssl_keyfile": tls.key_file,
    }
    return {k: v for k, v in options.items() if v is not None}


def _amqp(tls: Tls) -> dict[str, Any]:
    """py-amqp's ``ssl`` options; server_hostname None: kombu puts the broker's host name there,
    which switches the name check on."""
    options: dict[str, Any] = {
        "cert_reqs": tls.verify,
        "ca_certs": tls.ca_file,
        "certfile": tls.cert_file,
        "keyfile": tls.key_file,
    }
    found = {k: v for k, v in options.items() if v is not None}
    if tls.check_hostname:
        found["server_hostname"] = None
    return found


def _readable(path: str) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False
