"""`replicator verify` as an operator runs it: the real command beside a running pipeline (a
producer and workers on moto over HTTP) while a writer changes the primary at a steady rate.

(a) a clean pipeline: passes under steady writes count no drift; (b) items deleted from,
changed in and added to the replica directly are each counted once in their kind and repaired,
and the replica ends equal to the primary; (c) without --repair they are reported and left;
(d) a second verifier of the same pipeline does not sweep while the first holds it; the first
SIGKILLed mid-pass, the second resumes that pass (same job) and no segment is lost;
(e) --ignore-attributes: a replica-only attribute is not drift (and is, without the flag).
"""

from __future__ import annotations

import ast
import json
import random
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import redis

from tasks.core.config import settings
from tests.e2e.test_flower import PASSWORD, USER, _answers, api, start_flower
from tests.support import servers
from tests.support.faultproxy import Rule
from tests.support.migration import REPLICATOR
from tests.support.servers import wait_until
from tests.support.tables import client, create_table, scan_all

ITEMS = 60
HOT = 20  # the writer changes k0..k19; the drift is made on other keys


class Writer:
    """Updates the hot keys of the primary, about 10 times a second, until stopped."""

    def __init__(self, moto_url: str) -> None:
        self.stop = threading.Event()
        self.writes = 0
        self.thread = threading.Thread(target=self._run, args=(moto_url,), daemon=True)
        self.thread.start()

    def _run(self, moto_url: str) -> None:
        ddb, rng = client(moto_url), random.Random(7)
        while not self.stop.is_set():
            key = f"k{rng.randrange(HOT)}"
            item = {"id": {"S": key}, "n": {"N": str(self.writes)}}
            ddb.put_item(TableName="primary", Item=item)
            self.writes += 1
            self.stop.wait(0.1)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join()


def pipeline(moto_url: str, start_worker: Any, start_producer: Any) -> Writer:
    """Tables, a worker, a producer, ITEMS replicated; then a steady writer."""
    create_table(moto_url, "primary", stream="KEYS_ONLY")
    create_table(moto_url, "replica")
    start_worker(concurrency=2)
    start_producer("--primary", f"{moto_url}/primary", "--replica", f"{moto_url}/replica")
    ddb = client(moto_url)
    for i in range(ITEMS):
        ddb.put_item(TableName="primary", Item={"id": {"S": f"k{i}"}, "n": {"N": str(i)}})
    wait_until(lambda: len(scan_all(moto_url, "replica")) == ITEMS, 90, "replicated")
    return Writer(moto_url)


def start_verifier(env: dict[str, str], tmp_path: Path, moto_url: str, *args: str) -> Any:
    command = [REPLICATOR, "verify", f"{moto_url}/primary", f"{moto_url}/replica"]
    command += ["--name", "orders", "--rate", "2000", *args]
    return servers.start_command(command, env, tmp_path, "verifier")


def passes(command: Any) -> list[dict[str, Any]]:
    """The pass lines the verifier printed (its logs are JSON lines too, with an event)."""
    found = []
    for line in command.output().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if "pass" in entry and "event" not in entry:
                found.append(entry)
    return found


def logged(command: Any, event: str) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in command.output().splitlines() if x.startswith("{")]
    return [line for line in lines if line.get("event") == event]


def drift(moto_url: str) -> None:
    """k40 deleted from the replica, k41 changed there, x1 added there only."""
    ddb = client(moto_url)
    ddb.delete_item(TableName="replica", Key={"id": {"S": "k40"}})
    ddb.put_item(TableName="replica", Item={"id": {"S": "k41"}, "n": {"N": "-1"}})
    ddb.put_item(TableName="replica", Item={"id": {"S": "x1"}, "n": {"N": "1"}})


def counted(found: list[dict[str, Any]], field: str) -> int:
    return sum(p[field] for p in found)


def test_a_clean_pipeline_under_steady_writes_counts_no_drift(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any, tmp_path: Path
) -> None:
    writer = pipeline(moto_url, start_worker, start_producer)
    verifier = start_verifier(env, tmp_path, moto_url, "--every", "3s", "--passes", "3")
    try:
        assert verifier.process.wait(180) == 0, verifier.output()
    finally:
        writer.finish()
    found = passes(verifier)
    assert [p["pass"] for p in found] == [1, 2, 3], verifier.output()
    assert writer.writes > 30  # the writes went on through every pass
    for entry in found:
        assert entry["items"] == ITEMS and entry["coverage"] == 1.0, entry
        assert (entry["missing"], entry["different"], entry["extraneous"]) == (0, 0, 0), entry
    suspects = [e for e in logged(verifier, "drift confirmed")]
    assert not suspects


def test_drift_is_counted_once_in_its_kind_and_repaired(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any, tmp_path: Path
) -> None:
    writer = pipeline(moto_url, start_worker, start_producer)
    verifier = start_verifier(env, tmp_path, moto_url, "--every", "3s", "--repair")
    try:
        wait_until(lambda: len(passes(verifier)) >= 1, 120, "a first pass")
        drift(moto_url)
        seen = len(passes(verifier))
        wait_until(lambda: counted(passes(verifier), "repaired") >= 3, 120, "repaired")
        # one more whole pass after the repairs: nothing found again
        done = len(passes(verifier))
        wait_until(lambda: len(passes(verifier)) >= done + 1, 120, "a pass after the repairs")
    finally:
        writer.finish()
    assert verifier.terminate() == 0, verifier.output()
    found = passes(verifier)[seen:]
    assert counted(found, "missing") == 1, found
    assert counted(found, "different") == 1, found
    assert counted(found, "extraneous") == 1, found
    assert counted(found, "repaired") == 3, found
    assert (found[-1]["missing"], found[-1]["different"], found[-1]["extraneous"]) == (0, 0, 0)
    wait_until(
        lambda: scan_all(moto_url, "replica") == scan_all(moto_url, "primary"), 60, "equal tables"
    )


def test_without_repair_drift_is_reported_and_left(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any, tmp_path: Path
) -> None:
    writer = pipeline(moto_url, start_worker, start_producer)
    drift(moto_url)
    verifier = start_verifier(env, tmp_path, moto_url, "--every", "3s", "--passes", "1")
    try:
        assert verifier.process.wait(180) == 0, verifier.output()
    finally:
        writer.finish()
    (found,) = passes(verifier)
    assert (found["missing"], found["different"], found["extraneous"]) == (1, 1, 1), found
    assert found["repaired"] == 0
    shown = servers.start_command(
        [REPLICATOR, "verify", "report", "orders"], env, tmp_path, "report"
    )
    assert shown.process.wait(60) == 0, shown.output()
    lines = sorted(line for line in shown.output().splitlines() if line.startswith("["))
    assert lines == [
        '[different] {"id":{"S":"k41"}}',
        '[extraneous] {"id":{"S":"x1"}}',
        '[missing] {"id":{"S":"k40"}}',
    ], shown.output()
    replica = scan_all(moto_url, "replica")
    assert '{"id":{"S":"x1"}}' in replica and '{"id":{"S":"k40"}}' not in replica


def test_one_verifier_sweeps_at_a_time_and_a_killed_pass_resumes(
    env: dict[str, str],
    moto_url: str,
    start_worker: Any,
    start_producer: Any,
    tmp_path: Path,
    redis_client: redis.Redis,
) -> None:
    writer = pipeline(moto_url, start_worker, start_producer)
    args = ("--every", "40s", "--segments", "8", "--repair")
    first = start_verifier(env, tmp_path, moto_url, *args)
    second = None
    try:
        cursor = settings().key("verify", "orders")
        wait_until(lambda: int(redis_client.hget(cursor, "sent") or 0) >= 1, 60, "a pass started")
        second = start_verifier(env, tmp_path, moto_url, *args)
        time.sleep(3)  # the second is up and polling the lease
        assert not logged(second, "verifier holds the pipeline"), second.output()
        wait_until(lambda: int(redis_client.hget(cursor, "sent") or 0) >= 3, 60, "mid-pass")
        job = redis_client.hget(cursor, "job")
        sent_before = int(redis_client.hget(cursor, "sent") or 0)
        assert 3 <= sent_before < 8
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
        wait_until(lambda: logged(second, "verifier holds the pipeline"), 90, "the takeover")
        (took,) = logged(second, "verifier holds the pipeline")
        assert took["resumed_pass"] == 1 and took["segments_sent"] >= sent_before, took
        wait_until(lambda: passes(second), 120, "the resumed pass's end")
    finally:
        writer.finish()
        if second is not None:
            second.terminate()
    assert not passes(first)
    (resumed, *_) = passes(second)
    assert resumed["pass"] == 1 and resumed["coverage"] == 1.0, resumed
    assert resumed["items"] == ITEMS, resumed
    assert redis_client.hget(settings().key("verify", "orders"), "job") != job  # a new pass
    snapshot_job = job.decode() if isinstance(job, bytes) else job
    segments = [
        redis_client.hget(settings().key("job", snapshot_job, "seg", str(i)), "status")
        for i in range(8)
    ]
    assert all(s in (b"done", "done") for s in segments), segments


def test_ignored_attributes_are_not_drift(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any, tmp_path: Path
) -> None:
    writer = pipeline(moto_url, start_worker, start_producer)
    writer.finish()
    ddb = client(moto_url)
    item = {"id": {"S": "k50"}, "n": {"N": "50"}, "aws:rep:updateregion": {"S": "eu-west-1"}}
    ddb.put_item(TableName="replica", Item=item)
    ignoring = start_verifier(
        env,
        tmp_path,
        moto_url,
        *("--every", "1s", "--passes", "1", "--ignore-attributes", "aws:rep:updateregion"),
    )
    assert ignoring.process.wait(120) == 0, ignoring.output()
    (found,) = passes(ignoring)
    assert (found["missing"], found["different"], found["extraneous"]) == (0, 0, 0), found
    plain = start_verifier(env, tmp_path, moto_url, "--every", "1s", "--passes", "1")
    assert plain.process.wait(120) == 0, plain.output()
    (found,) = passes(plain)
    assert (found["missing"], found["different"], found["extraneous"]) == (0, 1, 0), found


def test_a_pipelines_file_verifies_and_repairs_by_default_with_metrics_and_status(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any, tmp_path: Path
) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(
        f"""
[[pipeline]]
name = "orders"
primary = "{moto_url}/primary"
replica = "{moto_url}/replica"
verify = {{ every = "2s", segments = 2, rate = "2000" }}
"""
    )
    create_table(moto_url, "primary", stream="KEYS_ONLY")
    create_table(moto_url, "replica")
    start_worker(concurrency=2)
    start_producer("--config", str(path))
    ddb = client(moto_url)
    for i in range(ITEMS):
        ddb.put_item(TableName="primary", Item={"id": {"S": f"k{i}"}, "n": {"N": str(i)}})
    wait_until(lambda: len(scan_all(moto_url, "replica")) == ITEMS, 90, "replicated")
    drift(moto_url)
    port = servers.free_port()
    command = [REPLICATOR, "verify", "--config", str(path), "--metrics-port", str(port)]
    verifier = servers.start_command(command, env, tmp_path, "verifier")
    try:
        wait_until(lambda: counted(passes(verifier), "repaired") == 3, 120, "repaired")
        scraped = metrics(port)
    finally:
        assert verifier.terminate() == 0, verifier.output()
    found = passes(verifier)
    assert {p["pipeline"] for p in found} == {"orders"}
    assert [counted(found, kind) for kind in ("missing", "different", "extraneous")] == [1, 1, 1]
    for kind in ("missing", "different", "extraneous"):
        assert scraped[f'replicator_drift_keys_total{{kind="{kind}",pipeline="orders"}}'] == 1
    assert scraped['replicator_drift_repaired_total{pipeline="orders"}'] == 3
    assert scraped['replicator_verify_items_total{pipeline="orders"}'] >= ITEMS
    assert scraped['replicator_verify_last_pass_timestamp_seconds{pipeline="orders"}'] > 0
    assert scan_all(moto_url, "replica") == scan_all(moto_url, "primary")

    shown = servers.start_command(
        [REPLICATOR, "status", "--config", str(path), "--json"], env, tmp_path, "status"
    )
    assert shown.process.wait(60) == 0, shown.output()
    (row,) = [json.loads(x) for x in shown.output().splitlines() if x.startswith('{"')]
    last = found[-1]
    assert row["pipeline"] == "orders" and row["verified_at"] is not None, row
    assert row["drift"] == last["missing"] + last["different"] + last["extraneous"], row


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [REPLICATOR, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def metrics(port: int) -> dict[str, float]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("replicator_"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def test_bad_input_is_one_line_and_exit_2(env: dict[str, str], moto_url: str) -> None:
    create_table(moto_url, "primary", stream="KEYS_ONLY")
    create_table(moto_url, "replica")
    tables = (f"{moto_url}/primary", f"{moto_url}/replica")
    for args, said in (
        (("run",), "give PRIMARY REPLICA, or --config FILE"),
        ((tables[0],), "give PRIMARY REPLICA, or --config FILE"),
        ((*tables, "--every", "often"), "every must be a duration"),
        ((*tables, "--rate", "lots"), "--rate must be"),
        ((*tables, "--filter", "kind == "), "--filter"),
        (("--config", "/nonexistent/fleet.toml"), "fleet.toml"),
    ):
        result = run(env, "verify", *args)
        errors = [x for x in result.stderr.splitlines() if x.startswith("error:")]
        assert result.returncode == 2, (args, result.stderr)
        assert len(errors) == 1 and said in errors[0], (args, result.stderr)
    unknown = run(env, "verify", "report", "nobody")
    assert unknown.returncode == 2 and "no verifier has run pipeline" in unknown.stderr


def test_flower_shows_the_sweep_segments_with_their_pipeline(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any, tmp_path: Path
) -> None:
    writer = pipeline(moto_url, start_worker, start_producer)
    writer.finish()
    port = servers.free_port()
    flower = start_flower(env, tmp_path, port, FLOWER_BASIC_AUTH=f"{USER}:{PASSWORD}")
    try:
        wait_until(lambda: _answers(port), 60, f"Flower\n{flower.output()}", interval=0.3)
        wait_until(lambda: bool(api(port, "/api/workers?refresh=1")), 30, "workers", interval=0.5)
        args = ("--every", "1s", "--segments", "3", "--passes", "1")
        verifier = start_verifier(env, tmp_path, moto_url, *args)
        assert verifier.process.wait(120) == 0, verifier.output()

        def sweeps() -> dict[str, int]:
            seen: dict[str, int] = {}
            for task in api(port, "/api/tasks?taskname=diff-segment").values():
                shown = ast.literal_eval(task.get("kwargs") or "{}")
                name = f"{shown.get('pipeline')} pass {shown.get('verify_pass')}"
                seen[name] = seen.get(name, 0) + 1
            return seen

        wait_until(lambda: sweeps() == {"orders pass 1": 3}, 30, "Flower to list them")
    finally:
        flower.terminate()


def test_verify_compares_through_the_transform(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any, tmp_path: Path
) -> None:
    create_table(moto_url, "primary", stream="KEYS_ONLY")
    create_table(moto_url, "replica")
    shape = ("--exclude-attributes", "ssn", "--filter", "kind != 'internal'")
    start_worker(concurrency=2)
    start_producer("--primary", f"{moto_url}/primary", "--replica", f"{moto_url}/replica", *shape)
    ddb = client(moto_url)
    for key, kind in (("a", "public"), ("b", "internal"), ("c", "public")):
        item = {"id": {"S": key}, "kind": {"S": kind}, "ssn": {"S": "1"}}
        ddb.put_item(TableName="primary", Item=item)
    wait_until(lambda: len(scan_all(moto_url, "replica")) == 2, 60, "a and c replicated")
    through = start_verifier(env, tmp_path, moto_url, "--every", "1s", "--passes", "1", *shape)
    assert through.process.wait(120) == 0, through.output()
    (found,) = passes(through)
    assert (found["missing"], found["different"], found["extraneous"]) == (0, 0, 0), found
    assert found["items"] == 2  # b is left out by the filter: absent on both sides
    plain = start_verifier(env, tmp_path, moto_url, "--every", "1s", "--passes", "1")
    assert plain.process.wait(120) == 0, plain.output()
    (found,) = passes(plain)
    assert (found["missing"], found["different"], found["extraneous"]) == (1, 2, 0), found


def test_a_throttled_primary_slows_the_sweep_which_finishes(
    env: dict[str, str],
    moto_url: str,
    fault_proxy: Any,
    start_worker: Any,
    tmp_path: Path,
    redis_client: redis.Redis,
) -> None:
    """Live replication reads the primary: a pass slows down while the primary throttles (the
    rate in force is a metric), and still ends, counting no drift."""
    from tasks.metrics.cluster import RedisCollector
    from tasks.metrics.queues import QueueCounts

    ddb = client(moto_url)
    for name in ("primary", "replica"):
        create_table(moto_url, name)
        for start in range(0, 200, 25):
            rows = [
                {"PutRequest": {"Item": {"id": {"S": f"k{i}"}, "n": {"N": str(i)}}}}
                for i in range(start, start + 25)
            ]
            ddb.batch_write_item(RequestItems={name: rows})
    fault_proxy.add_rule(Rule("Scan", action="throttle", every=2, table="primary"))
    start_worker(concurrency=2)
    command = [REPLICATOR, "verify", f"{fault_proxy.url}/primary", f"{moto_url}/replica"]
    command += ["--name", "throttled", "--rate", "400", "--every", "8s", "--segments", "8"]
    verifier = servers.start_command([*command, "--passes", "1"], env, tmp_path, "verifier")
    collector = RedisCollector(lambda: redis_client, lambda: QueueCounts({}))
    shown: list[float] = []

    def slowed() -> bool:
        for family in collector.collect():
            if family.name == "replicator_bulk_rate_per_second":
                shown.extend(sample.value for sample in family.samples)
        return any(rate < 400 for rate in shown)

    wait_until(slowed, 60, "a rate below 400 in the metrics", interval=0.2)
    assert verifier.process.wait(120) == 0, verifier.output()
    (found,) = passes(verifier)
    assert found["items"] == 200 and found["coverage"] == 1.0, found
    assert (found["missing"], found["different"], found["extraneous"]) == (0, 0, 0), found
    rate = float(redis_client.hget(settings().key("rate", found["job"]), "rate") or 0)
    assert 0 < rate < 400
    assert fault_proxy.counts("Scan", "primary").injected > 0


def test_a_frozen_verifier_loses_its_pipeline_and_cannot_write_after_it(
    env: dict[str, str],
    moto_url: str,
    start_worker: Any,
    start_producer: Any,
    tmp_path: Path,
    redis_client: redis.Redis,
) -> None:
    """SIGSTOP past the lease (the shipped 30 s): the standby takes the pass over; the frozen
    one, woken, finds the lease gone and writes nothing more (its writes are fenced)."""
    writer = pipeline(moto_url, start_worker, start_producer)
    writer.finish()
    args = ("--every", "40s", "--segments", "8")
    first = start_verifier(env, tmp_path, moto_url, *args)
    second = None
    cursor = settings().key("verify", "orders")
    try:
        wait_until(lambda: int(redis_client.hget(cursor, "sent") or 0) >= 2, 60, "a pass started")
        second = start_verifier(env, tmp_path, moto_url, *args)
        first.process.send_signal(signal.SIGSTOP)
        wait_until(lambda: logged(second, "verifier holds the pipeline"), 90, "the takeover")
        first.process.send_signal(signal.SIGCONT)
        wait_until(lambda: logged(first, "verifier lease lost"), 30, "the first to notice")
        wait_until(lambda: passes(second), 120, "the pass's end")
    finally:
        first.process.send_signal(signal.SIGCONT)
        if second is not None:
            second.terminate()
        first.terminate()
    (took,) = logged(second, "verifier holds the pipeline")
    assert took["resumed_pass"] == 1, took
    assert not passes(first)
    (done, *_) = passes(second)
    assert done["pass"] == 1 and done["coverage"] == 1.0 and done["items"] == ITEMS, done
