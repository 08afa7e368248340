"""One pipeline's continuous verification: pass after pass over the key space.

A pass is a diff job (``tasks.diff``: the workers compare ``t(primary)`` with the replica, the
pipeline's ignored attributes left out, nothing written) whose segments are sent to the ``bulk``
queue one by one in a shuffled order, spread over ``every`` (segment *i* at ``started + i *
every / segments``); its item reads share one rate cap (``rate``, item reads per second over both
tables). The discrepancies the segments record become suspects, confirmed or cleared by
``tasks.verify.confirm``; a confirmed one is repaired through the ordinary replicate task, or
reported. A pass ends when every segment finished and every suspect it found is settled: one
JSON line, and the next pass starts ``every`` after this one started (at once if it ran longer).

Everything a restarted verifier needs is in Redis (``tasks.verify.state``): the cursor (job,
order, segments sent, records read, counts) and the suspects, so a verifier killed mid-pass is
resumed by the next one where it stopped. Only the holder of the pipeline's lease sweeps it.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from commands.bulk.run import send_segment
from producer.enqueue import Enqueuer, Target
from producer.records import ChangeRecord
from tasks.aws import dynamo
from tasks.coord import stats
from tasks.core import logs
from tasks.core.config import settings
from tasks.core.keys import Key
from tasks.core.locations import REPLICA, shown
from tasks.core.transform import TransformSpec
from tasks.core.transform import load as load_transform
from tasks.diff.match import KINDS
from tasks.diff.recheck import Shape, compare, unchanged
from tasks.diff.segment import DiffOptions
from tasks.jobs.model import Job, Snapshot
from tasks.jobs.redis_store import RedisJobStore
from tasks.verify import confirm
from tasks.verify.confirm import CLEAR, CONFIRMED, REPAIRED, REPAIRING, UNREPAIRED, Suspect
from tasks.verify.settings import VerifySettings
from tasks.verify.state import Cursor, VerifyState
from worker.app import app

log = logs.get("verify")
READ_BATCH = 100  # suspects re-read per call


@dataclass(frozen=True)
class Verified:
    """A pipeline to verify: its tables, transform and settings (``rate`` resolved)."""

    name: str
    primary: str  # location specs, as the workers receive them
    replica: str
    transform: TransformSpec
    settings: VerifySettings
    rate: float  # item reads per second over both tables
    repair: bool
    item_bytes: dict[str, float] | None = None  # a share rate's planned sizes (Rate.item_bytes)


@dataclass
class Totals:
    """What this process counted since it started (the metrics)."""

    items: int = 0
    drift: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    repaired: int = 0
    last_pass_at: float | None = None  # epoch seconds the last full pass ended


class Sweep:
    def __init__(
        self,
        pipeline: Verified,
        client: redis.Redis,
        owner: str,
        say: Callable[[str], None],
        rng: random.Random | None = None,
    ) -> None:
        self.pipeline, self.redis, self.say = pipeline, client, say
        self.state = VerifyState(client, pipeline.name, owner)
        self.jobs = RedisJobStore(client)
        self.rng = rng or random.Random()
        self.totals = Totals()
        self.holding = False
        self.passes_done = 0  # full passes this process finished
        self.cursor = Cursor()
        self.suspects: dict[str, Suspect] = {}
        self.next_start = 0.0
        self.job: Job | None = None
        self._compared = 0  # the pass's compared items already counted in ``totals``
        cfg = settings()
        self.primary = cfg.table(pipeline.primary)
        self.replica = cfg.table(pipeline.replica, REPLICA)
        schema = dynamo.same_schema(self.primary, self.replica)
        shape = pipeline.transform
        self.shape: Shape = unchanged if shape.empty else load_transform(shape, schema.names)
        target = Target.replica(cfg.location(pipeline.replica), shape)
        self.enqueuer = Enqueuer(app, client, pipeline.primary, [target])

    # -- the lease -----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Take or renew the lease, then do what is due."""
        if not self.state.hold():
            if self.holding:
                log.warning("verifier lease lost", pipeline=self.pipeline.name)
            self.holding = False
            return
        if not self.holding:
            self._load(now)
            self.holding = True
        self._step(now)

    def last_pass_ended(self) -> float | None:
        """When the pipeline's last full pass ended, whichever verifier ran it."""
        last = self.state.last()
        return float(last["ended"]) if last else None

    def release(self) -> None:
        if self.holding:
            self.state.release()
            self.holding = False

    def _load(self, now: float) -> None:
        """Take over where the last holder stopped."""
        self.cursor = self.state.cursor()
        self.suspects = {k: Suspect.of(v) for k, v in self.state.suspects().items()}
        self.job = self.jobs.load(self.cursor.job) if self.cursor.job else None
        self._compared = self._snapshot().totals.get("compared", 0) if self.job else 0
        last = self.state.last()
        self.next_start = float(last["started"]) + self.pipeline.settings.every if last else now
        log.info(
            "verifier holds the pipeline",
            pipeline=self.pipeline.name,
            resumed_pass=self.cursor.number if self.job else None,
            segments_sent=self.cursor.sent if self.job else None,
            suspects=len(self.suspects),
        )

    # -- a pass --------------------------------------------------------------------------------

    def _step(self, now: float) -> None:
        if self.job is None:
            if now < self.next_start:
                return
            self._start(now)
        assert self.job is not None
        self._send_due(now)
        snapshot = self._snapshot()
        self._count_items(snapshot)
        self._read_records(now)
        self._confirm_due(now)
        sent = self.cursor.sent == len(self.cursor.order)
        settled = not any(s.number == self.cursor.number for s in self.suspects.values())
        if sent and settled and all(s.finished for s in snapshot.segments):
            self._finish(snapshot, now)

    def _start(self, now: float) -> None:
        p = self.pipeline
        options = DiffOptions(
            p.primary,
            p.replica,
            ignore=p.settings.ignore,
            rate=p.rate,
            item_bytes=p.item_bytes,
            transform=None if p.transform.empty else p.transform.to_params(),
        )
        segments = p.settings.segments
        self.job = self.jobs.create("diff", segments, options.to_params())
        order = list(range(segments))
        self.rng.shuffle(order)
        self.cursor = Cursor(self.cursor.number + 1, self.job.id, order, 0, time.time())
        self._compared = 0
        self.state.save(self.cursor)
        log.info("verify pass started", pipeline=p.name, number=self.cursor.number, job=self.job.id)

    def _send_due(self, now: float) -> None:
        """Send the segments whose time has come (spread over ``every``)."""
        assert self.job is not None
        cursor, every = self.cursor, self.pipeline.settings.every
        gap = every / max(len(cursor.order), 1)
        while cursor.sent < len(cursor.order) and time.time() >= cursor.started + cursor.sent * gap:
            segment = cursor.order[cursor.sent]
            label = {"pipeline": self.pipeline.name, "verify_pass": str(cursor.number)}
            send_segment(self.job, segment, label)  # sent again if we die before saving: harmless
            cursor.sent += 1
            self.state.save(cursor)

    def _snapshot(self) -> Snapshot:
        assert self.job is not None
        return self.jobs.snapshot(self.job.id)

    def _count_items(self, snapshot: Snapshot) -> None:
        compared = snapshot.totals.get("compared", 0)
        self.totals.items += max(0, compared - self._compared)
        self._compared = max(compared, self._compared)

    def _read_records(self, now: float) -> None:
        """The discrepancies the segments recorded become suspects (stored with the cursor)."""
        assert self.job is not None
        records = self.jobs.records(self.job.id, self.cursor.records)
        if not records:
            return
        settle = self._settle()
        fresh: dict[str, Suspect] = {}
        for line in records:
            entry = json.loads(line)
            if entry["kind"] not in KINDS:
                continue
            key = Key.from_wire(entry["key"]).canonical
            if key not in self.suspects and key not in fresh:
                fresh[key] = Suspect(self.cursor.number, now + settle)
        self.cursor.records += len(records)
        self.state.keep({k: v.to_json() for k, v in fresh.items()}, [], self.cursor)
        self.suspects.update(fresh)

    def _settle(self) -> float:
        lag = stats.lag_ms(self.redis, shown(self.pipeline.replica)).get("lag_ms_p99")
        return confirm.settle_seconds(lag)

    def _confirm_due(self, now: float) -> None:
        due = [k for k, s in self.suspects.items() if s.due <= now][:READ_BATCH]
        if not due:
            return
        readings = compare(
            self.primary,
            self.replica,
            [Key.from_canonical(k) for k in due],
            self.shape,
            self.pipeline.settings.ignore,
        )
        settle, changed, gone, reported, repairs = self._settle(), {}, [], [], []
        for reading in readings:
            key = reading.key.canonical
            suspect = self.suspects[key]
            verdict = confirm.judge(suspect, reading, now, settle)
            if verdict == CONFIRMED:
                self.cursor.counts[suspect.kind] += 1
                self.totals.drift[suspect.kind] += 1
                log.warning(
                    "drift confirmed",
                    pipeline=self.pipeline.name,
                    kind=suspect.kind,
                    key=key,
                    repair=self.pipeline.repair,
                )
                if self.pipeline.repair:
                    suspect.stage, suspect.reads = REPAIRING, 0
                    repairs.append(reading.key)
                    changed[key] = suspect
                else:
                    reported.append({"kind": suspect.kind, "key": json.loads(key), "at": now})
                    gone.append(key)
            elif verdict in (CLEAR, REPAIRED, UNREPAIRED):
                gone.append(key)
                if verdict == REPAIRED:
                    self.cursor.counts["repaired"] += 1
                    self.totals.repaired += 1
                elif verdict == UNREPAIRED:
                    self.cursor.counts["unrepaired"] += 1
                    log.warning("drift not repaired", pipeline=self.pipeline.name, key=key)
            else:
                changed[key] = suspect
        if repairs:  # through the ordinary replicate task: its stale-write guard applies
            self.enqueuer.enqueue([ChangeRecord(k, "", time.time(), "", False) for k in repairs])
        self.state.keep({k: v.to_json() for k, v in changed.items()}, gone, self.cursor, reported)
        for key in gone:
            self.suspects.pop(key, None)

    def _finish(self, snapshot: Snapshot, now: float) -> None:
        cursor, totals = self.cursor, snapshot.totals
        ok = sum(1 for s in snapshot.segments if s.finished and not s.error)
        summary: dict[str, Any] = {
            "pipeline": self.pipeline.name,
            "pass": cursor.number,
            "job": cursor.job,
            "items": totals.get("compared", 0),
            **{kind: cursor.counts[kind] for kind in KINDS},
            "repaired": cursor.counts["repaired"],
            "seconds": round(time.time() - cursor.started, 3),
            "coverage": round(ok / len(snapshot.segments), 4),
            "reads": totals.get("reads", 0),
            "started": cursor.started,
            "ended": time.time(),
            "every": self.pipeline.settings.every,
        }
        failed = {str(i): s.error for i, s in enumerate(snapshot.segments) if s.error}
        if failed:
            summary["failed_segments"] = failed
        done = Cursor(cursor.number)
        self.state.save(done, last=summary)
        self.cursor, self.job = done, None
        self.totals.last_pass_at = summary["ended"]
        self.passes_done += 1
        self.next_start = cursor.started + self.pipeline.settings.every
        shown_keys = ("started", "ended", "every")
        self.say(json.dumps({k: v for k, v in summary.items() if k not in shown_keys}))
