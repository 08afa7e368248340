"""Two tasks for one key at once: an older read must never end up on the replica.

The interleaving is forced: task A reads the primary (old state) and is held just before its
replica write; the primary changes; task B reads the new state and writes it; then A's write
goes through. Without the guard the replica ends at the old state (the second test shows the
race is real); with it, A notices that B claimed the key meanwhile and writes again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from tasks.aws.dynamo import Failure
from tasks.coord import guard as guard_module
from tasks.core.keys import Key
from tasks.core.locations import REPLICA
from tasks.replication.sync import ReplicaSink, sync_keys
from tests.support.tables import client, create_table, scan_all, table

ITEM_KEY = {"id": {"S": "contended"}}
KEY = Key.of(ITEM_KEY)


class HeldSink(ReplicaSink):
    """The replica, except that the first write waits until the test lets it go."""

    def __init__(self, replica: Any, reached: threading.Event, go: threading.Event) -> None:
        super().__init__(replica)
        self.reached, self.go, self.writes = reached, go, 0

    def write(self, present: Sequence[Any], absent: Sequence[Any]) -> dict[str, Failure]:
        self.writes += 1
        if self.writes == 1:
            self.reached.set()
            assert self.go.wait(20)
        return super().write(present, absent)


def _race(moto_url: str) -> tuple[dict[str, Any], int]:
    create_table(moto_url, "primary")
    create_table(moto_url, "replica")
    ddb = client(moto_url)
    ddb.put_item(TableName="primary", Item={**ITEM_KEY, "v": {"S": "old"}})
    primary, replica = table(f"{moto_url}/primary"), table(f"{moto_url}/replica", REPLICA)
    reached, go = threading.Event(), threading.Event()
    held = HeldSink(replica, reached, go)
    task_a = threading.Thread(target=sync_keys, args=(primary, held, [KEY]))
    task_a.start()
    assert reached.wait(20)  # A has read "old" and is about to write it

    ddb.put_item(TableName="primary", Item={**ITEM_KEY, "v": {"S": "new"}})
    sync_keys(primary, ReplicaSink(replica), [KEY])  # task B: reads "new", writes it
    assert scan_all(moto_url, "replica")[next(iter(scan_all(moto_url, "replica")))]["v"] == {
        "S": "new"
    }
    go.set()  # A's stale write lands now
    task_a.join(20)

    (item,) = scan_all(moto_url, "replica").values()
    return item, held.writes


def test_older_read_never_wins(env: dict[str, str], moto_url: str) -> None:
    item, writes = _race(moto_url)
    assert item["v"] == {"S": "new"}
    assert writes == 2  # A saw B's claim and wrote again


def test_without_the_guard_the_race_leaves_the_old_state(
    env: dict[str, str], moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(guard_module.StaleWriteGuard, "contended", lambda *_: [])
    monkeypatch.setattr(guard_module.StaleWriteGuard, "settle", lambda *_: [])
    item, writes = _race(moto_url)
    assert item["v"] == {"S": "old"} and writes == 1


def test_a_key_a_newer_task_claimed_during_our_read_is_left_to_it(
    env: dict[str, str], moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.replication import sync

    create_table(moto_url, "primary")
    create_table(moto_url, "replica")
    ddb = client(moto_url)
    ddb.put_item(TableName="primary", Item={**ITEM_KEY, "v": {"S": "old"}})
    primary, replica = table(f"{moto_url}/primary"), table(f"{moto_url}/replica", REPLICA)
    reached, go = threading.Event(), threading.Event()
    real_read = sync._read

    def read_then_wait(*args: Any) -> Any:
        result = real_read(*args)
        if threading.current_thread().name == "task-a":
            reached.set()
            assert go.wait(20)
        return result

    monkeypatch.setattr(sync, "_read", read_then_wait)
    outcome: dict[str, Any] = {}
    task_a = threading.Thread(
        name="task-a",
        target=lambda: outcome.update(a=sync_keys(primary, ReplicaSink(replica), [KEY])),
    )
    task_a.start()
    assert reached.wait(20)  # A has read "old" and has not written
    ddb.put_item(TableName="primary", Item={**ITEM_KEY, "v": {"S": "new"}})
    b = sync_keys(primary, ReplicaSink(replica), [KEY])  # B claims, reads "new", writes it
    go.set()
    task_a.join(20)

    (item,) = scan_all(moto_url, "replica").values()
    assert item["v"] == {"S": "new"} and b.puts == 1
    assert outcome["a"].superseded == 1 and outcome["a"].puts == 0  # A never wrote "old"
