"""moto's server with two of its bugs fixed, so that it behaves as the real services do.

1. Kinesis: after a split or merge, moto still routes new records (and the records it moves out
   of the parent) to the closed parent shard, because it picks the first shard whose hash range
   covers the key. Real Kinesis writes to open shards only.
2. DynamoDB Streams: moto base64-encodes binary *key* attributes twice in stream records (its
   NewImage/OldImage are right). Real DynamoDB Streams carry the key bytes once.

Run as ``python -m tests.support.moto_server -H 127.0.0.1 -p PORT`` (same arguments as moto's).
"""

from __future__ import annotations

from typing import Any

from moto.dynamodb.models import table as ddb_table
from moto.kinesis import models as kinesis_models
from moto.server import main

_original_shard_for_key = kinesis_models.Stream.get_shard_for_key


def _open_shard_for_key(self: Any, partition_key: str, explicit_hash_key: str) -> Any:
    shards = self.shards
    self.shards = {k: s for k, s in shards.items() if s.is_open}
    try:
        return _original_shard_for_key(self, partition_key, explicit_hash_key)
    finally:
        self.shards = shards


_original_stream_record_init = ddb_table.StreamRecord.__init__


def _stream_record_init(
    self: Any, table: Any, stream_type: str, event_name: str, old: Any, new: Any, seq: int
) -> None:
    _original_stream_record_init(self, table, stream_type, event_name, old, new, seq)
    attributes = (old if old is not None else new).to_json()["Attributes"]
    keys = self.record["dynamodb"]["Keys"]
    self.record["dynamodb"]["Keys"] = {name: attributes[name] for name in keys}


kinesis_models.Stream.get_shard_for_key = _open_shard_for_key
ddb_table.StreamRecord.__init__ = _stream_record_init

if __name__ == "__main__":
    main()
