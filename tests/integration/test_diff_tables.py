"""Segment diffs (compare, repair, backfill) against moto and dynalite over HTTP.

The segments run in this process through the job machinery (``tasks.jobs.model.run_segment`` on an
in-memory job store), exactly as `diff-tables` without --segments runs them.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

from tasks.diff.segment import DiffOptions, segment_diff
from tasks.jobs.memory_store import MemoryJobStore
from tasks.jobs.model import run_segment
from tests.integration.test_sync import EVERY_TYPE
from tests.support.faultproxy import Rule
from tests.support.tables import client, create_table, normalized_table

H = "h1"


def known_difference(url: str) -> tuple[str, str]:
    """primary h1/r1, h1/r2, h1/r4 (binary); replica h1/r2 changed, h1/r3, h1/r4 (same binary)."""
    for name in ("primary", "replica"):
        create_table(url, name, ("h", "S"), ("r", "S"))
    ddb = client(url)
    for item in (
        {"h": {"S": H}, "r": {"S": "r1"}, "v": {"N": "1"}},
        {"h": {"S": H}, "r": {"S": "r2"}, "v": {"N": "2"}},
        {"h": {"S": H}, "r": {"S": "r4"}, "b": {"B": b"\x00\xff\x10"}},
    ):
        ddb.put_item(TableName="primary", Item=item)
    for item in (
        {"h": {"S": H}, "r": {"S": "r2"}, "v": {"N": "20"}},
        {"h": {"S": H}, "r": {"S": "r3"}, "v": {"N": "3"}},
        {"h": {"S": H}, "r": {"S": "r4"}, "b": {"B": b"\x00\xff\x10"}},
    ):
        ddb.put_item(TableName="replica", Item=item)
    return f"{url}/primary", f"{url}/replica"


def fill(url: str, table: str, n: int, start: int = 0, value: str = "x") -> None:
    ddb = client(url)
    for first in range(start, start + n, 25):
        requests = [
            {
                "PutRequest": {
                    "Item": {"id": {"S": f"k{i:05d}"}, "v": {"S": value}, "n": {"N": str(i)}}
                }
            }
            for i in range(first, min(first + 25, start + n))
        ]
        ddb.batch_write_item(RequestItems={table: requests})


def diff(
    primary: str, replica: str, segments: int = 4, only: list[int] | None = None, **options: Any
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Run the wanted segments here; the totals and the records (parsed)."""
    opts = DiffOptions(primary, replica, **options)
    store = MemoryJobStore()
    job = store.create("diff", segments, opts.to_params())
    totals: Counter[str] = Counter()
    for segment in only if only is not None else range(segments):
        work = segment_diff(opts, segment, segments, job.id).work
        totals.update(run_segment(store, job, segment, work))
    return dict(totals), [json.loads(r) for r in store.records(job.id, 0)]


def kinds(records: list[dict[str, Any]]) -> dict[str, str]:
    return {r["key"]["r"]["S"]: r["kind"] for r in records}


def test_known_differences_are_found_once(env: dict[str, str], ddb_url: str) -> None:
    primary, replica = known_difference(ddb_url)

    totals, records = diff(primary, replica)

    assert kinds(records) == {"r1": "missing", "r2": "different", "r3": "extraneous"}
    assert (totals["missing"], totals["different"], totals["extraneous"]) == (1, 1, 1)
    assert totals["compared"] == 4
    different = next(r for r in records if r["kind"] == "different")
    assert different["attributes"] == ["v"]
    assert (different["primary"], different["replica"]) == ("present", "present")


def test_repair_then_rerun_finds_nothing(env: dict[str, str], ddb_url: str) -> None:
    primary, replica = known_difference(ddb_url)

    totals, _ = diff(primary, replica, repair=True)
    assert (
        totals["repaired_missing"],
        totals["repaired_different"],
        totals["repaired_extraneous"],
    ) == (1, 1, 1)

    again, records = diff(primary, replica)
    assert records == [] and not any(again.get(k) for k in ("missing", "different", "extraneous"))
    assert normalized_table(ddb_url, "replica") == normalized_table(ddb_url, "primary")


def test_ignored_attribute_is_not_a_difference(env: dict[str, str], ddb_url: str) -> None:
    primary, replica = known_difference(ddb_url)
    totals, records = diff(primary, replica, ignore=("v",))
    assert kinds(records) == {"r1": "missing", "r3": "extraneous"}
    assert totals.get("different", 0) == 0


def test_backfill_then_diff_finds_nothing(env: dict[str, str], ddb_url: str) -> None:
    create_table(ddb_url, "primary")
    create_table(ddb_url, "replica")
    fill(ddb_url, "primary", 1000)
    primary, replica = f"{ddb_url}/primary", f"{ddb_url}/replica"

    totals, records = diff(primary, replica, backfill=True)
    assert totals["backfilled"] == 1000 and len(records) == 1000
    assert {r["kind"] for r in records} == {"backfill"}

    again, found = diff(primary, replica)
    assert found == [] and again["compared"] == 1000


def test_one_segment_of_ten_finds_some_but_not_all(env: dict[str, str], ddb_url: str) -> None:
    create_table(ddb_url, "primary")
    create_table(ddb_url, "replica")
    fill(ddb_url, "primary", 1000)

    totals, records = diff(f"{ddb_url}/primary", f"{ddb_url}/replica", segments=10, only=[3])

    assert 0 < totals["missing"] < 1000
    assert totals["missing"] == len(records) == totals["scanned"]


def test_throttled_and_unprocessed_repair_writes_are_retried(
    env: dict[str, str], moto_url: str, fault_proxy: Any
) -> None:
    known_difference(moto_url)
    throttle = fault_proxy.add_rule(Rule("BatchWriteItem", "throttle", table="replica", first=2))
    unprocessed = fault_proxy.add_rule(
        Rule("BatchWriteItem", "unprocessed", table="replica", first=2)
    )
    primary, replica = f"{fault_proxy.url}/primary", f"{fault_proxy.url}/replica"

    totals, _ = diff(primary, replica, segments=1, repair=True)

    assert throttle.fired == 2 and unprocessed.fired >= 1
    assert totals.get("repair_failed", 0) == 0
    assert totals["repaired_missing"] + totals["repaired_different"] == 2
    assert normalized_table(moto_url, "replica") == normalized_table(moto_url, "primary")


def test_reads_per_key_compared_stay_near_two(
    env: dict[str, str], moto_url: str, fault_proxy: Any
) -> None:
    create_table(moto_url, "primary")
    create_table(moto_url, "replica")
    fill(moto_url, "primary", 600)
    fill(moto_url, "replica", 600)
    fill(moto_url, "replica", 10, start=100, value="changed")  # 10 different
    primary, replica = f"{fault_proxy.url}/primary", f"{fault_proxy.url}/replica"

    totals, records = diff(primary, replica, segments=4, page_size=50)

    assert len(records) == totals["different"] == 10 and totals["compared"] == 600
    point_reads = sum(fault_proxy.keys_count("BatchGetItem", t) for t in ("primary", "replica"))
    assert point_reads == 20  # the 10 candidates, confirmed on both sides
    assert totals["reads"] == totals["scanned"] + point_reads == 1220
    assert totals["reads"] / totals["compared"] <= 2.2


def test_every_dynamodb_type_is_compared_correctly(env: dict[str, str], ddb_url: str) -> None:
    create_table(ddb_url, "primary")
    create_table(ddb_url, "replica")
    ddb = client(ddb_url)
    same = {**EVERY_TYPE, "id": {"S": "same"}}
    variant = {
        **same,
        "ns": {"NS": ["-3", "2.50", "1.0"]},
        "ss": {"SS": ["c", "a", "b"]},
        "bs": {"BS": [b"\x01", b"\x00"]},
    }
    changed = {**EVERY_TYPE, "id": {"S": "changed"}}
    ddb.put_item(TableName="primary", Item=same)
    ddb.put_item(TableName="replica", Item=variant)
    ddb.put_item(TableName="primary", Item=changed)
    ddb.put_item(TableName="replica", Item={**changed, "bs": {"BS": [b"\x00", b"\x03"]}})

    totals, records = diff(f"{ddb_url}/primary", f"{ddb_url}/replica", segments=2)

    assert [(r["kind"], r["key"], r["attributes"]) for r in records] == [
        ("different", {"id": {"S": "changed"}}, ["bs"])
    ]
    assert totals["compared"] == 2


def test_differences_fixed_before_confirmation_are_not_reported(
    env: dict[str, str], moto_url: str, fault_proxy: Any
) -> None:
    known_difference(moto_url)
    hold = fault_proxy.add_rule(Rule("BatchGetItem", "hold", first=1))
    primary, replica = f"{fault_proxy.url}/primary", f"{fault_proxy.url}/replica"
    result: list[Any] = []
    runner = threading.Thread(target=lambda: result.append(diff(primary, replica, segments=1)))
    runner.start()

    hold.wait_held(1, timeout=30)  # the scans saw 3 differences; replication now fixes them
    ddb = client(moto_url)
    for key in ("r1", "r2"):
        item = ddb.get_item(TableName="primary", Key={"h": {"S": H}, "r": {"S": key}})["Item"]
        ddb.put_item(TableName="replica", Item=item)
    ddb.delete_item(TableName="replica", Key={"h": {"S": H}, "r": {"S": "r3"}})
    hold.release()
    runner.join(60)

    ((totals, records),) = result
    assert records == [] and totals["compared"] == 4
