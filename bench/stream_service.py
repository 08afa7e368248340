"""A stream service for benchmarks: a fake Kinesis, and a latency proxy in front of any service.

    python bench/stream_service.py fake --shards 256 --rate 100 --port P --proxy-port Q
    python bench/stream_service.py fake --streams 100 --shards 4 --rate 100 --port P --proxy-port Q
    python bench/stream_service.py proxy --upstream http://127.0.0.1:M --proxy-port Q

Both speak HTTP/1.1 with keep-alive on 127.0.0.1 (asyncio, one process), so that boto3 talks to
them as to the real service.

* The fake Kinesis answers DescribeStreamSummary, ListShards (100 shards a page, NextToken),
  GetShardIterator (every iterator type) and GetRecords (Records, NextShardIterator,
  MillisBehindLatest), and DynamoDB's DescribeTable for any table (key ``id``, a string), which
  the producer checks at start. It writes ``--rate`` changes a second itself, each to a random
  shard, each with a new key; a record's ``Data`` is the JSON that "Kinesis Data Streams for
  DynamoDB" writes, stamped with its creation time. Iterators are base64 of
  ``stream:shard:sequence``, as moto's are. With ``--streams K`` it serves K streams,
  ``changes-0`` ... ``changes-{K-1}``, of ``--shards`` shards each (``--rate`` is over all).
* The proxy delays every request by ``--latency`` seconds (40 ms: a realistic round trip to the
  service) before forwarding it, and notes when each GetRecords arrived and for which shard;
  ``GET /__reads`` returns them as JSON (``{shard: [epoch seconds, ...]}``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

Headers = dict[str, str]
STREAM = "changes"
ARN = f"arn:aws:kinesis:us-east-1:123456789012:stream/{STREAM}"
PAGE = 100


async def read_request(reader: asyncio.StreamReader) -> tuple[str, Headers, bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    headers: Headers = {}
    while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length") or 0))
    return line.decode("latin-1").strip(), headers, body


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """One whole response (status line, headers, body), as received."""
    head = bytearray(await reader.readline())
    length = 0
    while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
        head += raw
        name, _, value = raw.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    head += b"\r\n"
    return bytes(head) + await reader.readexactly(length)


def reply(status: int, body: Any, content_type: str = "application/x-amz-json-1.1") -> bytes:
    data = json.dumps(body).encode()
    reason = {200: "OK", 400: "Bad Request"}.get(status, "OK")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(data)}\r\nx-amzn-RequestId: bench\r\n\r\n"
    )
    return head.encode() + data


def iterator(shard: str, sequence: int) -> str:
    """``shard`` is ``stream/shardId``."""
    stream, _, shard_id = shard.rpartition("/")
    return base64.b64encode(f"{stream}:{shard_id}:{sequence}".encode()).decode()


def shard_of(iterator_text: str) -> tuple[str, int]:
    """The shard (``stream/shardId``) and the position of an iterator."""
    stream, shard, sequence = base64.b64decode(iterator_text).decode().split(":")
    return f"{stream}/{shard}", int(sequence)


def stream_of(request: dict[str, Any]) -> str:
    return str(request.get("StreamName") or request.get("StreamARN", "").rsplit("/", 1)[-1])


@dataclass
class Shard:
    shard_id: str
    start_hash: int
    end_hash: int
    records: list[dict[str, Any]] = field(default_factory=list)  # sequence i+1 at index i


class FakeKinesis:
    def __init__(self, shards: int, rate: float, seed: int = 1, streams: int = 1) -> None:
        step = 2**128 // shards
        names = [STREAM] if streams == 1 else [f"{STREAM}-{i}" for i in range(streams)]
        self.shards = {  # by stream/shardId
            f"{s}/shardId-{i:012d}": Shard(f"{s}/shardId-{i:012d}", i * step, (i + 1) * step - 1)
            for s in names
            for i in range(shards)
        }
        self.rate, self.rng, self.written = rate, random.Random(seed), 0

    async def write(self) -> None:
        """``rate`` changes a second, each a new key, each to a random shard."""
        began = time.monotonic()
        names = sorted(self.shards)
        while True:
            due = int((time.monotonic() - began) * self.rate)
            while self.written < due:
                self._put(self.shards[self.rng.choice(names)], f"k{self.written:09d}")
                self.written += 1
            await asyncio.sleep(0.002)

    def _put(self, shard: Shard, key: str) -> None:
        now = time.time()
        data = {
            "eventName": "INSERT",
            "tableName": "primary",
            "dynamodb": {
                "ApproximateCreationDateTime": int(now * 1000),
                "Keys": {"id": {"S": key}},
                "SizeBytes": 20,
            },
            "eventSource": "aws:dynamodb",
        }
        shard.records.append(
            {
                "SequenceNumber": str(len(shard.records) + 1),
                "ApproximateArrivalTimestamp": now,
                "Data": base64.b64encode(json.dumps(data).encode()).decode(),
                "PartitionKey": key,
            }
        )

    def answer(self, target: str, request: dict[str, Any]) -> tuple[int, Any]:
        operation = target.rsplit(".", 1)[-1]
        handler = getattr(self, f"_{operation}", None)
        if handler is None:
            return 400, {"__type": "UnknownOperationException", "message": operation}
        result: tuple[int, Any] = handler(request)
        return result

    def _DescribeTable(self, request: dict[str, Any]) -> tuple[int, Any]:
        table = {
            "TableName": request["TableName"],
            "TableStatus": "ACTIVE",
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        }
        return 200, {"Table": table}

    def _DescribeStreamSummary(self, request: dict[str, Any]) -> tuple[int, Any]:
        stream = stream_of(request)
        summary = {
            "StreamName": stream,
            "StreamARN": ARN.replace(STREAM, stream),
            "StreamStatus": "ACTIVE",
            "RetentionPeriodHours": 24,
            "StreamCreationTimestamp": 1.7e9,
            "EnhancedMonitoring": [],
            "OpenShardCount": len([s for s in self.shards if s.startswith(f"{stream}/")]),
        }
        return 200, {"StreamDescriptionSummary": summary}

    def _ListShards(self, request: dict[str, Any]) -> tuple[int, Any]:
        stream, _, start_text = (request.get("NextToken") or f"{stream_of(request)}|0").partition(
            "|"
        )
        names = sorted(s for s in self.shards if s.startswith(f"{stream}/"))
        start = int(start_text)
        page = names[start : start + PAGE]
        body: dict[str, Any] = {
            "Shards": [
                {
                    "ShardId": name.rpartition("/")[2],
                    "HashKeyRange": {
                        "StartingHashKey": str(self.shards[name].start_hash),
                        "EndingHashKey": str(self.shards[name].end_hash),
                    },
                    "SequenceNumberRange": {"StartingSequenceNumber": "1"},
                }
                for name in page
            ]
        }
        if start + PAGE < len(names):
            body["NextToken"] = f"{stream}|{start + PAGE}"
        return 200, body

    def _GetShardIterator(self, request: dict[str, Any]) -> tuple[int, Any]:
        shard = self.shards[f"{stream_of(request)}/{request['ShardId']}"]
        kind = request["ShardIteratorType"]
        if kind == "LATEST":
            position = len(shard.records)
        elif kind == "AFTER_SEQUENCE_NUMBER":
            position = int(request["StartingSequenceNumber"])
        elif kind == "AT_SEQUENCE_NUMBER":
            position = int(request["StartingSequenceNumber"]) - 1
        elif kind == "AT_TIMESTAMP":
            moment = float(request["Timestamp"])
            position = sum(1 for r in shard.records if r["ApproximateArrivalTimestamp"] < moment)
        else:
            position = 0
        return 200, {"ShardIterator": iterator(shard.shard_id, position)}

    def _GetRecords(self, request: dict[str, Any]) -> tuple[int, Any]:
        shard_id, position = shard_of(request["ShardIterator"])
        shard = self.shards[shard_id]
        records = shard.records[position : position + int(request.get("Limit") or 10000)]
        end = position + len(records)
        behind = 0
        if end < len(shard.records):
            behind = int((time.time() - shard.records[end]["ApproximateArrivalTimestamp"]) * 1000)
        return 200, {
            "Records": records,
            "NextShardIterator": iterator(shard_id, end),
            "MillisBehindLatest": behind,
        }


async def serve_fake(fake: FakeKinesis, port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request := await read_request(reader):
                _, headers, body = request
                status, answer = fake.answer(headers.get("x-amz-target", ""), json.loads(body))
                content_type = headers.get("content-type", "application/x-amz-json-1.1")
                writer.write(reply(status, answer, content_type))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


class LatencyProxy:
    def __init__(self, upstream: tuple[str, int], latency: float) -> None:
        self.upstream, self.latency = upstream, latency
        self.reads: dict[str, list[float]] = defaultdict(list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: list[Any] = []
        try:
            while request := await read_request(reader):
                line, headers, body = request
                if line.startswith("GET /__reads"):
                    writer.write(reply(200, self.reads, "application/json"))
                    await writer.drain()
                    continue
                self._note(headers, body)
                await asyncio.sleep(self.latency)
                writer.write(await self._exchange(upstream, self._forwarded(line, headers, body)))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if upstream:
                upstream[1].close()
            writer.close()

    async def _exchange(self, upstream: list[Any], request: bytes) -> bytes:
        """Send upstream on the kept connection, once more on a new one if it was closed."""
        for attempt in (1, 2):
            try:
                if not upstream:
                    upstream[:] = await asyncio.open_connection(*self.upstream)
                upstream[1].write(request)
                await upstream[1].drain()
                return await read_response(upstream[0])
            except (ConnectionError, asyncio.IncompleteReadError):
                if upstream:
                    upstream[1].close()
                upstream.clear()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _note(self, headers: Headers, body: bytes) -> None:
        if headers.get("x-amz-target", "").endswith(".GetRecords"):
            with_iterator = json.loads(body).get("ShardIterator", "")
            self.reads[shard_of(with_iterator)[0]].append(time.time())

    @staticmethod
    def _forwarded(line: str, headers: Headers, body: bytes) -> bytes:
        lines = [line, *(f"{k}: {v}" for k, v in headers.items() if k != "connection")]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def main_async(args: argparse.Namespace) -> None:
    tasks: list[Any] = []
    if args.role == "fake":
        fake = FakeKinesis(args.shards, args.rate, streams=args.streams)
        server = await serve_fake(fake, args.port)
        upstream = ("127.0.0.1", args.port)
        tasks.append(asyncio.ensure_future(fake.write()))
    else:
        host, _, port = args.upstream.removeprefix("http://").partition(":")
        upstream, server = (host, int(port)), None
    proxy = LatencyProxy(upstream, args.latency)
    front = await asyncio.start_server(proxy.handle, "127.0.0.1", args.proxy_port)
    print("ready", flush=True)
    async with front:
        await front.serve_forever()
    del server, tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["fake", "proxy"])
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--proxy-port", type=int, required=True)
    parser.add_argument("--upstream", default="")
    parser.add_argument("--latency", type=float, default=0.04)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
