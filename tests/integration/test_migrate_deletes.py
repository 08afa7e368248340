"""A delete during a migration's backfill never brings the item back (forced interleaving).

The backfill copies key X: it claims X, reads it from SOURCE (present), and before its write
lands, X is deleted on SOURCE and the stream's replicate task for X runs to the end (reads:
absent; deletes on TARGET: nothing there). Then the backfill's write of the old item lands.
The stale-write guard sees that X was claimed by a task that started after the backfill's
claim, reads X again (absent) and deletes it: TARGET ends without X. With the guard's
after-write check (``settle``) neutralised, the same interleaving leaves X resurrected on
TARGET, which is what the test shows first, so that it would fail without the guard.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from commands.bulk.plan import Plan
from commands.bulk.run import execute
from commands.bulk.spec import BulkSpec
from tasks.aws.dynamo import Failure
from tasks.coord.guard import StaleWriteGuard, Written
from tasks.core.keys import Key
from tasks.core.locations import REPLICA
from tasks.core.typed_json import Item
from tasks.diff.segment import DiffOptions
from tasks.replication import sync
from tests.support.tables import client, create_table, scan_all, table

DOOMED = {"id": {"S": "k007"}}


def backfill(moto_url: str) -> None:
    options = DiffOptions(f"{moto_url}/source", f"{moto_url}/target", backfill=True)
    execute(Plan("local", 1), BulkSpec(kind="diff", params=options.to_params()))


def interleave_delete(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the backfill's write of DOOMED wait for a delete of it and its replication."""
    write = sync.ReplicaSink.write
    happened: list[str] = []

    def delayed(self: sync.ReplicaSink, present: Sequence[Item], absent: Sequence[Key]) -> Any:
        carries = any(item.get("id") == DOOMED["id"] for item in present)
        if carries and not happened:
            happened.append("deleted on source")
            client(moto_url).delete_item(TableName="source", Key=DOOMED)
            primary = table(f"{moto_url}/source")
            replica = sync.ReplicaSink(table(f"{moto_url}/target", REPLICA))
            outcome = sync.sync_keys(primary, replica, [Key.of(DOOMED)])
            happened.append(f"replicated: {outcome.counts()}")
        result: dict[str, Failure] = write(self, present, absent)
        return result

    monkeypatch.setattr(sync.ReplicaSink, "write", delayed)
    return happened


@pytest.fixture()
def tables(env: dict[str, str], moto_url: str) -> None:
    create_table(moto_url, "source", stream="KEYS_ONLY")
    create_table(moto_url, "target")
    ddb = client(moto_url)
    for i in range(20):
        ddb.put_item(TableName="source", Item={"id": {"S": f"k{i:03d}"}, "v": {"N": str(i)}})


def test_without_the_guard_the_interleaving_resurrects_the_item(
    tables: None, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settle = StaleWriteGuard.settle

    def blind(self: StaleWriteGuard, token: str, written: Written) -> list[str]:
        settle(self, token, written)  # counts as usual, but reports no key as contended
        return []

    monkeypatch.setattr(StaleWriteGuard, "settle", blind)
    happened = interleave_delete(moto_url, monkeypatch)

    backfill(moto_url)

    assert happened and happened[0] == "deleted on source"
    assert '{"id":{"S":"k007"}}' in scan_all(moto_url, "target")  # back from the dead


def test_a_key_deleted_after_the_backfill_read_it_ends_absent(
    tables: None, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    happened = interleave_delete(moto_url, monkeypatch)

    backfill(moto_url)

    assert happened and happened[0] == "deleted on source"
    target = scan_all(moto_url, "target")
    assert '{"id":{"S":"k007"}}' not in target
    assert target.keys() == scan_all(moto_url, "source").keys()
    assert len(target) == 19
