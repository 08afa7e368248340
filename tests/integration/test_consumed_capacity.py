"""A bulk job's calls ask DynamoDB what they consumed, and a job asked for a share of capacity is
charged by it: items bigger than planned cost more of the rate, whatever the table's
DescribeTable said (``tasks.aws.consumed``). Both backends report real units (moto's server as
fixed in tests/support/moto_server.py)."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from tasks.aws.consumed import EVENTUAL, STRONG, WRITE, Meter, item_equivalents, metered
from tasks.backup.restore import TableWriter
from tasks.coord import stats
from tasks.coord.ratelimit import RateLimiter
from tasks.core.keys import Key
from tasks.core.locations import PRIMARY, REPLICA
from tasks.diff import segment
from tasks.diff.segment import DiffOptions
from tests.integration.test_metrics_collector import scraped
from tests.support.tables import client, create_table, table

BIG = "x" * 9_000  # about 9 KB: 9 write units, a third of a scan's 4 KB read unit... per item


class Recording(RateLimiter):
    """A real limiter (Redis token bucket) that also keeps what it was charged."""

    charged: list[float]

    def take(self, cost: float) -> float:
        self.charged.append(cost)
        return super().take(cost)


def _tables(url: str, *names: str) -> None:
    for name in names:
        create_table(url, name)
        client(url).get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2})


def _items(n: int) -> list[dict[str, Any]]:
    return [{"id": {"S": f"k{i:03}"}, "v": {"S": BIG}} for i in range(n)]


def test_item_equivalents() -> None:
    # planned 100-byte items: 1 write unit, 0.5 read units a scan: charged by what was used
    planned = {PRIMARY: 100.0, REPLICA: 100.0}
    assert item_equivalents(25, {(REPLICA, WRITE): 225.0}, planned) == 225.0
    assert item_equivalents(25, {(PRIMARY, EVENTUAL): 3.0}, planned) == 6.0
    # sides add up (each side's reads are charged apart), or for one operation spanning both
    # sides (a backfill's read and write of an item) the dearest counts
    both = {(PRIMARY, EVENTUAL): 3.0, (REPLICA, WRITE): 30.0}
    assert item_equivalents(25, both, planned) == 36.0
    assert item_equivalents(25, both, planned, one_op=True) == 30.0
    # within a side the dearest price class counts: a page's scan and its items' point reads
    reads = {(PRIMARY, EVENTUAL): 12.5, (PRIMARY, STRONG): 25.0}
    assert item_equivalents(25, reads, planned) == 25.0
    # items per second (no planned sizes): the items; nothing since the last charge: nothing
    assert item_equivalents(25, {(REPLICA, WRITE): 225.0}, None) == 25.0
    assert item_equivalents(25, {}, planned) == 0.0
    # an endpoint that never reports capacity: the items
    assert Meter().cost(25, planned) == 25.0


@pytest.mark.parametrize("share", [True, False], ids=["share-rate", "items-rate"])
def test_a_restore_write_is_charged_by_the_units_it_consumed(
    ddb_url: str, redis_client: redis.Redis, share: bool
) -> None:
    _tables(ddb_url, "target")
    meter = Meter()
    target = metered(table(f"{ddb_url}/target", REPLICA), meter)
    limiter = Recording(redis_client, "restore-job", 1_000_000, watch=target)
    limiter.charged = []
    planned = {REPLICA: 100.0} if share else None  # as `--rate 50%` plans a 100-byte item
    writer = TableWriter(target, limiter, item_bytes=planned)
    writer.write(_items(40), [])
    writer.write([], [Key.of({"id": {"S": "k000"}})])

    stats.flush_throttles(redis_client)  # what the worker does after each task
    units = stats.consumed_units(redis_client)[(str(target), REPLICA)]
    assert units >= 40 * 9 + 1  # DynamoDB's answer: 9 units per item, 1 for the delete
    if share:
        assert sum(limiter.charged) == pytest.approx(units)  # 100-byte items cost 1 unit each
    else:
        assert limiter.charged == [40.0, 1.0]  # --rate in items per second: items
    metric = (
        "replicator_consumed_capacity_units_total",
        frozenset({("table", str(target)), ("side", REPLICA)}),
    )
    assert scraped(redis_client)[metric] == pytest.approx(units)


def test_a_share_rate_scan_is_charged_by_the_units_it_consumed(
    ddb_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tables(ddb_url, "left", "right")
    for name in ("left", "right"):
        requests = [{"PutRequest": {"Item": i}} for i in _items(20)]
        client(ddb_url).batch_write_item(RequestItems={name: requests})
    made: list[Recording] = []

    def recording(*args: Any) -> Recording:
        limiter = Recording(*args)
        limiter.charged = []
        made.append(limiter)
        return limiter

    monkeypatch.setattr(segment, "RateLimiter", recording)
    options = DiffOptions(
        f"{ddb_url}/left",
        f"{ddb_url}/right",
        rate=1_000_000,
        item_bytes={PRIMARY: 100.0, REPLICA: 100.0},  # planned: 0.5 units an item scanned
    )
    diff = segment.segment_diff(options, 0, 1, "verify-job")
    pages = list(diff.work(None))
    assert sum(p.counts.get("scanned", 0) for p in pages) == 40
    stats.flush_throttles(redis_client)
    ours = {str(table(f"{ddb_url}/{name}")) for name in ("left", "right")}
    units = sum(u for (t, _), u in stats.consumed_units(redis_client).items() if t in ours)
    # 20 items of 9 KB a side: 180 KB, 0.5 units per 4 KB -> about 23 units a side
    assert units >= 2 * 0.5 * (20 * 9_000 // 4096)
    assert sum(made[0].charged) == pytest.approx(units / 0.5)  # not 40 items
    assert sum(made[0].charged) > 2 * 40
