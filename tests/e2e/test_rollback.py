"""restore-table --at as a rollback: nothing lost by mistake, a plan first, only what changed.

Each test runs the real command (a subprocess, or click's runner for quick refusals) against
moto over HTTP; the writes a rollback makes are counted by the fault proxy in front of moto
(BatchWriteItem items that reached it), not taken from the command's own summary.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tasks.backup.incremental import S3Sink
from tasks.core.keys import Key
from tasks.core.locations import parse_s3
from tasks.replication.sync import sync_keys
from tests.integration.test_backup_incremental import BIN, make_bucket, run
from tests.support.servers import wait_until
from tests.support.tables import client, create_table, scan_all, table

SOURCE = "s3://backups/inc/primary"


def _key(name: str) -> dict[str, Any]:
    return {"id": {"S": name}}


def _back_up(moto_url: str, names: list[str]) -> None:
    """Back up the keys' current state (what the producer's backup task does)."""
    sink = S3Sink(parse_s3("s3://backups/inc"), "primary")
    keys = [Key.of(_key(n)) for n in names]
    assert sync_keys(table(f"{moto_url}/primary"), sink, keys).failed == {}


def _change(moto_url: str, puts: dict[str, str], deletes: tuple[str, ...] | list[str] = ()) -> None:
    ddb = client(moto_url)
    for name, value in puts.items():
        ddb.put_item(TableName="primary", Item={**_key(name), "v": {"S": value}})
    for name in deletes:
        ddb.delete_item(TableName="primary", Key=_key(name))
    _back_up(moto_url, [*puts, *deletes])


def _moment() -> float:
    """A time between what was backed up so far and what comes next (S3 stamps to the second)."""
    now = time.time()
    time.sleep(math.ceil(now) - now + 0.05)
    return now


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def _values(moto_url: str, name: str = "primary") -> dict[str, str]:
    return {json.loads(k)["id"]["S"]: i["v"]["S"] for k, i in scan_all(moto_url, name).items()}


def _summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode in (0, 1), result.stderr
    summary: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return summary


def _restore(env: dict[str, str], url: str, *args: str, name: str = "primary") -> Any:
    return run(env, "restore-table", SOURCE, f"{url}/{name}", *args)


def _written(proxy: Any, name: str = "primary") -> int:
    return int(proxy.keys_count("BatchWriteItem", name))


def test_a_key_without_history_is_left_alone_as_unknown(env: dict[str, str], moto_url: str) -> None:
    create_table(moto_url, "primary")
    make_bucket(moto_url)
    _change(moto_url, {"a": "1"})
    at = _moment()
    client(moto_url).put_item(TableName="primary", Item={**_key("legacy-0001"), "v": {"S": "x"}})

    one = _restore(env, moto_url, "--at", _iso(at), "--key", '{"id":"legacy-0001"}')

    summary = _summary(one)
    assert one.returncode == 0
    assert (summary["unknown"], summary["delete"], summary["put"]) == (1, 0, 0)
    assert _values(moto_url) == {"a": "1", "legacy-0001": "x"}


def test_a_time_before_the_history_is_refused_unless_asked(
    env: dict[str, str], moto_url: str
) -> None:
    create_table(moto_url, "primary")
    make_bucket(moto_url)
    _change(moto_url, {f"k{i}": "1" for i in range(5)})
    client(moto_url).put_item(TableName="primary", Item={**_key("never"), "v": {"S": "x"}})
    typo = _iso(time.time() - 365 * 86400)
    before = _values(moto_url)

    refused = _restore(env, moto_url, "--at", typo)
    planned = _restore(env, moto_url, "--at", typo, "--dry-run")

    assert refused.returncode == 2, refused.stdout + refused.stderr
    (line,) = [x for x in refused.stderr.splitlines() if not x.startswith("[progress]")]
    assert line.startswith("error: ") and "precedes the backup's history" in line
    assert "--before-history" in line and "oldest version was written at 20" in line
    assert planned.returncode == 2 and "precedes the backup's history" in planned.stderr
    assert json.loads(planned.stdout.splitlines()[-1])["delete"] == 5  # the plan is shown
    assert _values(moto_url) == before

    forced = _restore(env, moto_url, "--at", typo, "--before-history")

    assert _summary(forced)["delete"] == 5 and forced.returncode == 0
    assert _values(moto_url) == {"never": "x"}  # keys the backup never saw stay


def test_deletes_count_only_items_that_were_there(
    env: dict[str, str], moto_url: str, fault_proxy: Any
) -> None:
    create_table(moto_url, "primary")
    make_bucket(moto_url)
    _change(moto_url, {"old": "1"})
    at = _moment()
    _change(moto_url, {"new1": "1", "new2": "1", "new3": "1"})
    _change(moto_url, {}, ["new1"])  # already gone again: nothing to delete
    create_table(moto_url, "copy")  # another table: compared with its own items
    client(moto_url).put_item(TableName="copy", Item={**_key("new2"), "v": {"S": "1"}})

    into_primary = _restore(env, fault_proxy.url, "--at", _iso(at))
    into_copy = _restore(env, fault_proxy.url, "--at", _iso(at), name="copy")

    first, second = _summary(into_primary), _summary(into_copy)
    assert (first["delete"], first["unchanged"], first["compared_with"]) == (2, 2, "backup")
    assert (second["delete"], second["put"], second["compared_with"]) == (1, 1, "table")
    assert second["unchanged"] == 2  # new1 and new3 were not in the copy
    assert _written(fault_proxy) == 2 and _written(fault_proxy, "copy") == 2
    assert _values(moto_url) == {"old": "1"} and _values(moto_url, "copy") == {"old": "1"}


def test_a_rollback_writes_only_the_keys_that_differ_and_the_plan_predicts_it(
    env: dict[str, str], moto_url: str, fault_proxy: Any
) -> None:
    create_table(moto_url, "primary")
    make_bucket(moto_url)
    _change(moto_url, {f"k{i:03}": "good" for i in range(150)})
    at = _moment()
    state_at_t = _values(moto_url)
    _change(moto_url, {f"k{i:03}": "bad" for i in range(20)}, [f"k{i:03}" for i in range(20, 30)])
    _change(moto_url, {f"junk{i}": "bad" for i in range(5)})
    _change(moto_url, {"k140": "back to good"})
    _change(moto_url, {"k140": "good"})  # changed twice, back where it was: nothing to write
    before = _values(moto_url)

    plan = _restore(env, fault_proxy.url, "--at", _iso(at), "--dry-run", "--show")
    planned = _summary(plan)
    assert _written(fault_proxy) == 0 and _values(moto_url) == before
    shown = [line for line in plan.stdout.splitlines() if line.startswith("[")]
    assert len(shown) == 35 and '[delete] {"id":{"S":"junk0"}}' in shown

    real = _restore(env, fault_proxy.url, "--at", _iso(at), "--segments", "4", "--segment", "0")
    rest = [
        _restore(env, fault_proxy.url, "--at", _iso(at), "--segments", "4", "--segment", str(i))
        for i in (1, 2, 3)
    ]

    done = [_summary(r) for r in (real, *rest)]
    totals = {f: sum(d[f] for d in done) for f in ("put", "delete", "unchanged", "unknown")}
    assert (planned["put"], planned["delete"], planned["unknown"]) == (30, 5, 0)
    assert totals == {f: planned[f] for f in totals}
    assert _written(fault_proxy) == 35
    assert _values(moto_url) == state_at_t


def test_since_reverts_only_the_window_and_lists_the_keys_changed_after(
    env: dict[str, str], moto_url: str
) -> None:
    create_table(moto_url, "primary")
    make_bucket(moto_url)
    _change(moto_url, {"a": "1", "b": "1", "c": "1"})
    since = _moment()
    _change(moto_url, {"a": "bad", "b": "bad", "new": "bad"})  # the bad deploy
    at = _moment()
    _change(moto_url, {"b": "fixed by hand", "d": "1"})  # legitimate traffic after it

    result = _restore(env, moto_url, "--since", _iso(since), "--at", _iso(at))
    backwards = run(
        env,
        "restore-table",
        SOURCE,
        f"{moto_url}/primary",
        "--since",
        _iso(at),
        "--at",
        _iso(since),
    )

    summary = _summary(result)
    assert result.returncode == 0, result.stderr
    assert '[changed-after] {"id":{"S":"b"}}' in result.stdout.splitlines()
    assert (summary["put"], summary["delete"], summary["changed_after"]) == (1, 1, 1)
    assert _values(moto_url) == {"a": "1", "b": "fixed by hand", "c": "1", "d": "1"}
    assert backwards.returncode == 2 and "must come before" in backwards.stderr


def test_a_version_is_dated_by_its_change_not_by_the_backup(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any
) -> None:
    create_table(moto_url, "primary", stream="KEYS_ONLY")
    s3 = make_bucket(moto_url)
    start_producer("--primary", f"{moto_url}/primary", "--backup", "s3://backups/inc")
    client(moto_url).put_item(TableName="primary", Item={**_key("late"), "v": {"S": "1"}})
    at = time.time() + 0.2
    time.sleep(2.5)  # the backup runs later than T: no worker yet
    start_worker(concurrency=1)
    name = f"inc/primary/{Key.of(_key('late')).id}"
    wait_until(
        lambda: "Versions" in s3.list_object_versions(Bucket="backups", Prefix=name),
        60,
        "the change backed up",
    )

    restored = run(env, "restore-table", SOURCE, f"{moto_url}/at-t", "--at", _iso(at), "--create")
    history = run(
        env,
        "incremental-record-history",
        f"{moto_url}/primary",
        "s3://backups/inc",
        '{"id":"late"}',
        "--json",
    )

    assert restored.returncode == 0, restored.stderr
    assert _values(moto_url, "at-t") == {"late": "1"}
    (version,) = [json.loads(line) for line in history.stdout.splitlines()]
    changed, written = (datetime.fromisoformat(version[f]) for f in ("changed", "modified"))
    assert changed.timestamp() <= at < written.timestamp()


def _key_listings(proxy: Any) -> list[str]:
    """The object names that key-by-key ListObjectVersions calls asked for."""
    names = []
    for call in proxy.calls("GET"):
        if "versions" in call.path and "prefix=inc%2Fprimary%2F" in call.path:
            prefix = call.path.split("prefix=", 1)[1].split("&", 1)[0]
            if prefix != "inc%2Fprimary%2F":
                names.append(prefix)
    return names


def test_keys_fan_out_with_progress_and_each_key_is_listed_once(
    env: dict[str, str], moto_url: str, fault_proxy: Any, start_worker: Any, tmp_path: Path
) -> None:
    create_table(moto_url, "primary")
    make_bucket(moto_url)
    names = [f"k{i:03}" for i in range(60)]
    _change(moto_url, dict.fromkeys(names, "good"))
    at = _moment()
    _change(moto_url, dict.fromkeys(names, "bad"))
    (tmp_path / "keys").write_text("".join(f'{{"id":"{n}"}}\n' for n in [*names, "nope"]))
    start_worker(concurrency=2, queues="bulk", extra_env={"AWS_ENDPOINT_URL_S3": fault_proxy.url})
    here = {**env, "AWS_ENDPOINT_URL_S3": fault_proxy.url}

    result = run(
        here,
        "restore-table",
        SOURCE,
        f"{moto_url}/primary",
        "--at",
        _iso(at),
        "--keys",
        str(tmp_path / "keys"),
        "--segments",
        "3",
        "--progress-interval",
        "0.2",
    )

    summary = _summary(result)
    assert result.returncode == 0, result.stderr
    assert (summary["segments"], summary["keys"]) == ([0, 1, 2], 61)
    assert (summary["put"], summary["unknown"]) == (60, 1)
    assert "[progress]" in result.stderr
    listed = _key_listings(fault_proxy)
    ours = {f"inc%2Fprimary%2F{Key.of(_key(n)).id}" for n in names}
    assert sorted(n for n in listed if n in ours) == sorted(ours)  # one listing per key
    assert len(listed) == len(ours) + 2  # and "nope": our name, then the original tool's
    assert _values(moto_url) == dict.fromkeys(names, "good")


def test_a_keys_restore_killed_and_run_again_writes_every_key_once(
    env: dict[str, str], moto_url: str, fault_proxy: Any, tmp_path: Path
) -> None:
    create_table(moto_url, "primary")
    make_bucket(moto_url)
    names = [f"k{i:03}" for i in range(250)]
    _change(moto_url, dict.fromkeys(names, "good"))
    at = _moment()
    _change(moto_url, dict.fromkeys(names, "bad"))
    (tmp_path / "keys").write_text("".join(f'{{"id":"{n}"}}\n' for n in names))
    args = [
        str(BIN / "restore-table"),
        SOURCE,
        f"{fault_proxy.url}/primary",
        "--at",
        _iso(at),
        "--keys",
        str(tmp_path / "keys"),
        "--rate",
        "100",
    ]

    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(lambda: 0 < _written(fault_proxy) < len(names), 60, "some keys restored")
    os.kill(first.pid, signal.SIGKILL)
    first.communicate(timeout=30)

    def restored() -> int:
        return sum(1 for v in _values(moto_url).values() if v == "good")

    # a write the proxy was forwarding when the command died still lands: wait for it
    wait_until(lambda: _written(fault_proxy) == restored(), 30, "the last writes landed")
    restored_before = restored()
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)

    summary = _summary(again)
    assert 0 < restored_before < len(names)
    assert summary["put"] == len(names) - restored_before
    assert summary["unchanged"] == restored_before
    assert _written(fault_proxy) == len(names)  # both runs together: each key once
    assert _values(moto_url) == dict.fromkeys(names, "good")


def _backed_up(s3: Any) -> dict[str, str]:
    """The backup's current objects: key name -> value."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="backups", Prefix="inc/"):
        for obj in page.get("Contents", []):
            try:
                body = s3.get_object(Bucket="backups", Key=obj["Key"])["Body"].read()
            except s3.exceptions.NoSuchKey:
                continue  # deleted since the listing
            item = json.loads(body)
            found[item["id"]["S"]] = item["v"]["S"]
    return found


def test_a_live_table_rolled_back_while_its_backup_runs_ends_as_at_t(
    env: dict[str, str],
    moto_url: str,
    fault_proxy: Any,
    start_worker: Any,
    start_producer: Any,
) -> None:
    create_table(moto_url, "primary", stream="KEYS_ONLY")
    s3, ddb = make_bucket(moto_url), client(moto_url)
    start_worker(concurrency=2)
    start_producer("--primary", f"{moto_url}/primary", "--backup", "s3://backups/inc")
    for i in range(120):
        ddb.put_item(TableName="primary", Item={**_key(f"k{i:03}"), "v": {"S": "good"}})
    wait_until(lambda: _backed_up(s3) == _values(moto_url), 90, "the backup caught up")
    at = _moment()
    state_at_t = _values(moto_url)
    for i in range(15):
        ddb.put_item(TableName="primary", Item={**_key(f"k{i:03}"), "v": {"S": "bad"}})
    for i in range(15, 20):
        ddb.delete_item(TableName="primary", Key=_key(f"k{i:03}"))
    for i in range(5):
        ddb.put_item(TableName="primary", Item={**_key(f"junk{i}"), "v": {"S": "bad"}})
    wait_until(lambda: _backed_up(s3) == _values(moto_url), 90, "the bad deploy backed up")

    planned = _summary(_restore(env, fault_proxy.url, "--at", _iso(at), "--dry-run"))
    done = _summary(_restore(env, fault_proxy.url, "--at", _iso(at)))

    fields = ("put", "delete", "unchanged", "unknown")
    assert [planned[f] for f in fields] == [done[f] for f in fields] == [20, 5, 100, 0]
    assert _written(fault_proxy) == 25
    assert _values(moto_url) == state_at_t
    # the rollback's own writes are backed up as changes; then nothing is left to undo
    wait_until(lambda: _backed_up(s3) == state_at_t, 90, "the rollback backed up")
    again = _summary(_restore(env, fault_proxy.url, "--at", _iso(at), "--dry-run"))
    assert (again["put"], again["delete"], again["unchanged"]) == (0, 0, 125)
