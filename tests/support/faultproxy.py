"""A fault-injecting HTTP proxy for tests: it sits between the code under test and moto.

The proxy runs as a thread of the pytest process (a stdlib `ThreadingHTTPServer` on 127.0.0.1)
and forwards every request (any method, path, headers and body, chunked request bodies included)
to the upstream URL over kept-alive connections. Rules, added and removed at run time from the
test thread, inject faults into the requests they select::

    with FaultProxy(moto_url) as proxy:            # or the `fault_proxy` fixture
        ddb = client(proxy.url)
        rule = proxy.add_rule(Rule("BatchWriteItem", action="unprocessed", table="replica"))
        ...
        assert proxy.keys_count("BatchGetItem", "primary") == 3
        proxy.remove_rule(rule)

API:

- `FaultProxy(upstream_url)`: `.start()`, `.stop()`, `.url`, context manager.
- `proxy.add_rule(rule) -> Rule`, `proxy.remove_rule(rule)`, `proxy.clear_rules()`.
- `proxy.counts(operation, table=None, purpose=None) -> Counts`: requests forwarded and faults
  applied.
- `proxy.keys_count(operation, table, purpose=None) -> int`: items/keys of batch requests that
  reached upstream.
- `proxy.reset_counts()`.
- `proxy.calls(operation=None, purpose=None) -> list[CallRecord]`: the requests answered so
  far, with the caller's application id (botocore's `AWS_SDK_UA_APP_ID`, the `app/NAME` of its
  User-Agent), its JSON document, its status, and when the proxy received it and finished
  answering it.
- `Rule(operation, action="throttle", table=None, probability=None, first=None, every=None,
  delay=0.0, seed=None, hold_timeout=30.0, app=None, purpose=None)`; `rule.seen`, `rule.fired`;
  for holds `rule.wait_held(k, timeout)`, `rule.held_calls` and `rule.release(drop=False)`.

Selection. A rule's `operation` matches the `X-Amz-Target` header exactly
(`"DynamoDB_20120810.GetRecords"`) or by the part after the dot (`"GetRecords"`); requests
without that header (S3) are named by their HTTP method (`"PUT"`). `table` restricts the rule to
DynamoDB JSON requests naming that table (`TableName`, `RequestItems` or `TransactItems`), and
`app` to the requests of one application id.

Purpose. The product's permission check marks its requests (`replicator/permission-check` in the
User-Agent): rules select, `counts`/`keys_count` count and `calls` return the requests of the
`purpose` given, by default those without one (the work under test).

Of the matching requests a rule fires on the `first` N, on `every` Nth, with `probability` p
(seeded by `seed` for repeatable runs), or, given none of these, on all.

Actions:

- `throttle`: answer HTTP 400 `ProvisionedThroughputExceededException`, not forwarded.
- `error`: answer HTTP 500 `InternalServerError`, not forwarded.
- `unprocessed`: BatchWriteItem/BatchGetItem only. Forward the first half of each table's items
  or keys (of `table` only, if given; at least one is held back) and answer the upstream's
  response with the rest added to `UnprocessedItems`/`UnprocessedKeys`.
- `delay`: sleep `delay` seconds, then go on.
- `hold`: block until `rule.release()` (or `hold_timeout`), then go on; after
  `rule.release(drop=True)` the held requests are dropped instead: never forwarded, their
  connections closed without an answer (a request lost with the machine that sent it).

Rules are tried in the order they were added: delays and holds apply and the next rule is tried;
the first throttle or error ends the request; at most one unprocessed rule applies.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

Headers = list[tuple[str, str]]
Reply = tuple[int, Headers, bytes]

ACTIONS = ("throttle", "error", "unprocessed", "delay", "hold")
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "upgrade",
        "expect",
        "content-length",
        "transfer-encoding",
    }
)
DDB_ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
FAULTS = {
    "throttle": (
        400,
        "ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded "
        "(injected by FaultProxy)",
    ),
    "error": (500, "InternalServerError", "Internal server error (injected by FaultProxy)"),
}


@dataclass(frozen=True)
class _Batch:
    """How one batch operation lists its items and reports the unprocessed ones."""

    unprocessed: str
    empty: Callable[[], dict[str, Any]]
    items: Callable[[Any], list[Any]]
    with_items: Callable[[Any, list[Any]], Any]


BATCHES = {
    "BatchWriteItem": _Batch("UnprocessedItems", dict, lambda v: v, lambda v, items: items),
    "BatchGetItem": _Batch(
        "UnprocessedKeys",
        lambda: {"Responses": {}},
        lambda v: v["Keys"],
        lambda v, items: {**v, "Keys": items},
    ),
}


def _operation_matches(pattern: str, name: str) -> bool:
    return pattern == name or name.endswith("." + pattern)


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class _Call:
    """One request as the proxy read it."""

    method: str
    path: str
    headers: Headers
    body: bytes
    chunked: bool
    operation: str
    document: dict[str, Any] | None

    @property
    def tables(self) -> tuple[str, ...]:
        return _tables_of(self.document or {})

    @property
    def batch(self) -> _Batch | None:
        return BATCHES.get(_short(self.operation)) if self.document else None

    @property
    def app(self) -> str | None:
        found = re.search(r"\bapp/(\S+)", self.agent)
        return found.group(1) if found else None

    @property
    def purpose(self) -> str | None:
        """What the request says it is for (``replicator/PURPOSE`` in its User-Agent)."""
        found = re.search(r"\breplicator/(\S+)", self.agent)
        return found.group(1) if found else None

    @property
    def agent(self) -> str:
        return next((v for k, v in self.headers if k.lower() == "user-agent"), "")

    def with_document(self, document: dict[str, Any]) -> _Call:
        return replace(self, document=document, body=json.dumps(document).encode())


def _tables_of(document: dict[str, Any]) -> tuple[str, ...]:
    names = [document["TableName"]] if isinstance(document.get("TableName"), str) else []
    names += list(document.get("RequestItems") or {})
    for item in document.get("TransactItems") or []:
        names += [part["TableName"] for part in item.values() if "TableName" in part]
    return tuple(dict.fromkeys(names))


def _parse_call(method: str, path: str, headers: Message, body: bytes) -> _Call:
    target = headers.get("X-Amz-Target", "")
    document = None
    if target and "json" in headers.get("Content-Type", ""):
        with contextlib.suppress(ValueError):
            loaded = json.loads(body or b"{}")
            document = loaded if isinstance(loaded, dict) else None
    chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
    return _Call(method, path, list(headers.items()), body, chunked, target or method, document)


@dataclass(eq=False)
class Rule:
    """Which requests to select and what to do to them; the handle `add_rule` returns."""

    operation: str
    action: str = "throttle"
    table: str | None = None
    probability: float | None = None
    first: int | None = None
    every: int | None = None
    delay: float = 0.0
    seed: int | None = None
    hold_timeout: float = 30.0
    app: str | None = None
    purpose: str | None = None
    seen: int = field(default=0, init=False)
    held_calls: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False)
    fired: int = field(default=0, init=False)
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _gate: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _held: int = field(default=0, init=False, repr=False)
    _drop: bool = field(default=False, init=False, repr=False)
    _changed: threading.Condition = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, not {self.action!r}")
        if sum(x is not None for x in (self.probability, self.first, self.every)) > 1:
            raise ValueError("give at most one of probability, first, every")
        if self.action == "unprocessed" and _short(self.operation) not in BATCHES:
            raise ValueError("unprocessed applies to BatchWriteItem and BatchGetItem only")
        self._rng = random.Random(self.seed)
        self._changed = threading.Condition(self._lock)

    def matches(self, call: _Call) -> bool:
        if not _operation_matches(self.operation, call.operation):
            return False
        if self.app is not None and call.app != self.app:
            return False
        if call.purpose != self.purpose:
            return False
        return self.table is None or self.table in call.tables

    def fires(self) -> bool:
        """Count one matching request and decide whether the rule applies to it."""
        with self._lock:
            self.seen += 1
            if self.first is not None:
                hit = self.seen <= self.first
            elif self.every is not None:
                hit = self.seen % self.every == 0
            elif self.probability is not None:
                hit = self._rng.random() < self.probability
            else:
                hit = True
            self.fired += hit
            return hit

    def hold(self, document: dict[str, Any] | None = None) -> bool:
        """Block the calling request until `release()` (or `hold_timeout`); False: drop it."""
        with self._changed:
            self.held_calls.append(document or {})
            self._held += 1
            self._changed.notify_all()
        try:
            self._gate.wait(self.hold_timeout)
        finally:
            with self._changed:
                self._held -= 1
                self._changed.notify_all()
        return not self._drop

    @property
    def held(self) -> int:
        """How many requests this rule is blocking right now."""
        with self._lock:
            return self._held

    def wait_held(self, k: int, timeout: float = 10.0) -> None:
        """Wait until `k` requests are being held; TimeoutError if they are not in time."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._held >= k, timeout):
                raise TimeoutError(f"{self._held} of {k} requests held after {timeout}s")

    def release(self, drop: bool = False) -> None:
        """Let every held request (and every later one) through, or drop them all."""
        self._drop = drop
        self._gate.set()


@dataclass(frozen=True)
class CallRecord:
    """One request the proxy answered."""

    operation: str
    app: str | None
    document: dict[str, Any] | None
    status: int
    started: float  # time.time() when the proxy had read the request
    ended: float  # time.time() when the proxy had sent the answer
    path: str = ""  # the request's path and query (S3 operations are told apart by it)
    purpose: str | None = None  # replicator/PURPOSE of its User-Agent (permission-check)


@dataclass(frozen=True)
class Counts:
    """What happened to the requests of one operation (and table)."""

    forwarded: int = 0
    throttle: int = 0
    error: int = 0
    unprocessed: int = 0
    delay: int = 0
    hold: int = 0

    @property
    def injected(self) -> int:
        """Requests answered or altered by a fault (throttle, error, unprocessed)."""
        return self.throttle + self.error + self.unprocessed


class _Tally:
    """Thread-safe counters by (outcome, operation, table, purpose); table None counts the
    request once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str, str | None, str | None]] = Counter()
        self._keys: Counter[tuple[str, str, str | None]] = Counter()

    def add(self, outcome: str, call: _Call) -> None:
        with self._lock:
            for table in (None, *call.tables):
                self._requests[outcome, call.operation, table, call.purpose] += 1
            if outcome == "forwarded" and call.batch and call.document:
                for table, value in call.document["RequestItems"].items():
                    self._keys[call.operation, table, call.purpose] += len(call.batch.items(value))

    def counts(self, operation: str, table: str | None, purpose: str | None) -> Counts:
        totals: Counter[str] = Counter()
        with self._lock:
            for (outcome, name, of_table, of_purpose), n in self._requests.items():
                if (of_table, of_purpose) == (table, purpose) and _operation_matches(
                    operation, name
                ):
                    totals[outcome] += n
        return Counts(**totals)

    def keys(self, operation: str, table: str, purpose: str | None) -> int:
        with self._lock:
            return sum(
                n
                for (name, of_table, of_purpose), n in self._keys.items()
                if (of_table, of_purpose) == (table, purpose)
                and _operation_matches(operation, name)
            )

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._keys.clear()


def _split(call: _Call, batch: _Batch, table: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request items to forward and those to hold back (the first half of each list kept)."""
    kept: dict[str, Any] = {}
    held: dict[str, Any] = {}
    for name, value in (call.document or {})["RequestItems"].items():
        items = batch.items(value)
        keep = len(items) // 2 if table in (None, name) else len(items)
        if keep:
            kept[name] = batch.with_items(value, items[:keep])
        if keep < len(items):
            held[name] = batch.with_items(value, items[keep:])
    return kept, held


def _merge(reply: dict[str, Any], batch: _Batch, held: dict[str, Any]) -> dict[str, Any]:
    unprocessed = dict(reply.get(batch.unprocessed) or {})
    for name, value in held.items():
        earlier = batch.items(unprocessed[name]) if name in unprocessed else []
        unprocessed[name] = batch.with_items(value, earlier + batch.items(value))
    return {**reply, batch.unprocessed: unprocessed}


def _own_headers(call: _Call) -> Headers:
    """Headers of a reply the proxy makes up: the request's JSON flavour, a request id."""
    content_type = next((v for k, v in call.headers if k.lower() == "content-type"), None)
    return [
        ("Content-Type", content_type or "application/x-amz-json-1.0"),
        ("x-amzn-RequestId", str(uuid.uuid4())),
    ]


def _json_reply(status: int, headers: Headers, document: dict[str, Any]) -> Reply:
    """A JSON reply; an upstream CRC32 header no longer fits the body, so it goes."""
    kept = [(k, v) for k, v in headers if k.lower() != "x-amz-crc32"]
    return status, kept, json.dumps(document).encode()


def _fault_reply(call: _Call, action: str) -> Reply:
    status, error_type, message = FAULTS[action]
    prefix = DDB_ERROR_PREFIX if call.operation.startswith("DynamoDB") else ""
    headers = [*_own_headers(call), ("x-amzn-ErrorType", error_type)]
    return _json_reply(status, headers, {"__type": prefix + error_type, "message": message})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def close_connections(self) -> None:
        with self.connections_lock:
            for sock in self.connections:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    upstream: http.client.HTTPConnection

    def setup(self) -> None:
        super().setup()
        host, port = self.server.proxy.upstream
        self.upstream = http.client.HTTPConnection(host, port, timeout=60)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        self.upstream.close()
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line per request on stderr."""

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, OSError):
            self.close_connection = True

    def _handle(self) -> None:
        call = _parse_call(self.command, self.path, self.headers, self._read_body())
        started = time.time()
        status = self._answer(call)
        self.server.proxy.record(
            CallRecord(
                _short(call.operation),
                call.app,
                call.document,
                status,
                started,
                time.time(),
                call.path,
                call.purpose,
            )
        )

    def _answer(self, call: _Call) -> int:
        proxy = self.server.proxy
        split_rule = None
        for rule in proxy.rules():
            if (rule.action == "unprocessed" and split_rule) or not rule.matches(call):
                continue
            if not rule.fires():
                continue
            proxy.tally.add(rule.action, call)
            if rule.action == "delay":
                time.sleep(rule.delay)
            elif rule.action == "hold":
                if not rule.hold(call.document):
                    self.close_connection = True
                    return None
            elif rule.action == "unprocessed":
                split_rule = rule
            else:
                return self._reply(*_fault_reply(call, rule.action))
        if split_rule and call.batch:
            return self._reply(*self._forward_split(call, call.batch, split_rule.table))
        return self._reply(*self._forward(call))

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _read_chunked(self) -> bytes:
        """The raw chunked body, framing and trailers included, to forward unchanged."""
        raw = bytearray()
        while True:
            line = self.rfile.readline()
            raw += line
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                break
            raw += self.rfile.read(size + 2)
        while line not in (b"\r\n", b"\n", b""):
            line = self.rfile.readline()
            raw += line
        return bytes(raw)

    def _forward(self, call: _Call) -> Reply:
        self.server.proxy.tally.add("forwarded", call)
        headers = [(k, v) for k, v in call.headers if k.lower() not in HOP_BY_HOP]
        if call.chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        elif call.body or "Content-Length" in self.headers:
            headers.append(("Content-Length", str(len(call.body))))
        try:
            response = self._exchange(call, headers)
            return response.status, response.getheaders(), response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.upstream.close()
            return 502, [("Content-Type", "text/plain")], f"upstream failed: {exc}".encode()

    def _exchange(self, call: _Call, headers: Headers) -> http.client.HTTPResponse:
        """Send one request upstream, once more on a fresh connection if the kept one died."""
        for attempt in (1, 2):
            try:
                self.upstream.putrequest(
                    call.method, call.path, skip_host=True, skip_accept_encoding=True
                )
                for name, value in headers:
                    self.upstream.putheader(name, value)
                self.upstream.endheaders(call.body or None)
                return self.upstream.getresponse()
            except (
                http.client.RemoteDisconnected,
                ConnectionResetError,
                BrokenPipeError,
                http.client.CannotSendRequest,
            ):
                self.upstream.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _forward_split(self, call: _Call, batch: _Batch, table: str | None) -> Reply:
        kept, held = _split(call, batch, table)
        if not held:
            return self._forward(call)
        if not kept:
            return _json_reply(200, _own_headers(call), _merge(batch.empty(), batch, held))
        status, headers, body = self._forward(
            call.with_document({**(call.document or {}), "RequestItems": kept})
        )
        if status != 200:
            return status, headers, body
        return _json_reply(status, headers, _merge(json.loads(body), batch, held))

    def _reply(self, status: int, headers: Headers, body: bytes) -> int:
        self.send_response_only(status)
        lengthless = self.command == "HEAD" or status in (204, 304)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP or (lengthless and name.lower() == "content-length"):
                self.send_header(name, value)
        if not lengthless:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not lengthless:
            self.wfile.write(body)
        self.wfile.flush()
        return status


class FaultProxy:
    """An HTTP proxy to `upstream_url` that injects faults by rule (see the module docstring)."""

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream_url!r}")
        self.upstream = (parts.hostname, parts.port or 80)
        self.tally = _Tally()
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._calls: list[CallRecord] = []

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        for rule in self.rules():
            rule.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)
        self._server = self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def add_rule(self, rule: Rule) -> Rule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove_rule(self, rule: Rule) -> None:
        with self._lock:
            self._rules.remove(rule)
        rule.release()

    def clear_rules(self) -> None:
        for rule in self.rules():
            self.remove_rule(rule)

    def rules(self) -> tuple[Rule, ...]:
        with self._lock:
            return tuple(self._rules)

    def counts(
        self, operation: str, table: str | None = None, purpose: str | None = None
    ) -> Counts:
        """Requests of `operation` (naming `table`, if given) forwarded and faulted so far."""
        return self.tally.counts(operation, table, purpose)

    def keys_count(self, operation: str, table: str, purpose: str | None = None) -> int:
        """Items (BatchWriteItem) or keys (BatchGetItem) of `table` that reached the upstream."""
        return self.tally.keys(operation, table, purpose)

    def reset_counts(self) -> None:
        self.tally.reset()

    def record(self, call: CallRecord) -> None:
        with self._lock:
            self._calls.append(call)

    def calls(self, operation: str | None = None, purpose: str | None = None) -> list[CallRecord]:
        """The requests of `purpose` answered so far (of `operation`, if given), in the order
        they ended."""
        with self._lock:
            return [
                c
                for c in self._calls
                if (operation is None or c.operation == operation) and c.purpose == purpose
            ]
