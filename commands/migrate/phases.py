"""The phases of a migration, in order; each one resumable from the record in Redis.

preflight  both tables reachable, schemas equal, stream on, backfill estimate within retention
create     (--create) TARGET with SOURCE's definition, indexes ACTIVE, TTL set
capture    the moment the tail starts from, recorded *before* the backfill scans anything
           (``--backfill export``: and DynamoDB asked for an export as at that moment)
backfill   every SOURCE item copied by the workers (a fanned-out ``diff-tables --backfill``;
           or the export's data files loaded, then the tail started from the capture: a
           change after it is applied after the load, so no item comes back)
catch-up   the tail (running since capture) reads at the stream's tip, the workers drained it
verify     ``diff-tables --repair`` over all segments or a sample; every key found re-read equal
ready      one JSON line on stdout; the tail goes on until SIGTERM/SIGINT or ``migrate stop``

Every run starts with preflight (tables, stream and schemas can have changed since the last);
a phase marked done in the record is skipped on a rerun; the tail restarts from its
checkpoints; a backfill whose segments are still on the workers is waited for again.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import click

from commands.bulk.plan import Plan
from commands.bulk.run import execute
from commands.bulk.spec import BulkSpec, Outcome
from commands.migrate.preflight import Preflight, check
from commands.migrate.record import Migration, MigrationStore
from commands.migrate.tail import Tail
from producer.enqueue import Target
from tasks.aws import definitions, dynamo
from tasks.aws.capacity import Rate
from tasks.backup import export
from tasks.coord import deadletters, stats
from tasks.coord.redis_conn import connection
from tasks.core.errors import ReplicatorError, TransientError
from tasks.core.keys import Key
from tasks.core.locations import S3Location, Table, shown
from tasks.core.times import age_text
from tasks.core.transform import TransformSpec
from tasks.core.transform import load as load_transform
from tasks.diff.match import KINDS
from tasks.diff.recheck import settle, unchanged
from tasks.diff.segment import DiffOptions
from tasks.jobs.model import Job

RECHECK_SECONDS = 60.0
"""How long a repaired key may keep differing (its replication in flight under live writes)
before the verify gives up on it."""
CATCH_UP_POLL_SECONDS = 1.0


class MigrationFailed(ReplicatorError):
    """A phase that cannot complete (a backfill or verify segment failed): exit 3."""


@dataclass(frozen=True)
class Verify:
    """``--verify full`` or ``--verify sample:P`` (P per cent of the scan segments)."""

    share: float = 1.0

    @classmethod
    def parse(cls, text: str) -> Verify:
        if text == "full":
            return cls()
        kind, _, value = text.partition(":")
        try:
            share = float(value) / 100
        except ValueError:
            share = -1.0
        if kind != "sample" or not 0 < share <= 1:
            raise click.BadParameter(f"expected full or sample:P with 0 < P <= 100, got {text!r}")
        return cls(share)

    def segments(self, total: int, rng: random.Random) -> tuple[int, ...]:
        if self.share >= 1:
            return ()
        count = max(1, math.ceil(total * self.share))
        return tuple(sorted(rng.sample(range(total), count)))


@dataclass(frozen=True)
class Options:
    create: bool
    segments: int
    rate: Rate
    verify: Verify
    verify_segments: int
    backup: S3Location | None
    export_to: S3Location | None  # --backfill export: where DynamoDB writes the export
    kinesis_stream: str | None  # the tail reads this Kinesis stream instead of DynamoDB Streams
    transform: TransformSpec  # TARGET holds t(SOURCE item): backfill, tail and verify alike
    with_stream: bool
    exit_when_ready: bool
    lag_threshold: float
    turnover_at: float | None
    pickup_timeout: float
    progress_interval: float


@dataclass
class Migrator:
    store: MigrationStore
    record: Migration
    source: Table
    target: Table
    options: Options
    tail: Tail | None = None
    preflight: Preflight | None = None
    say: Callable[[str], None] = field(default=lambda line: click.echo(line, err=True))

    # -- running the phases -----------------------------------------------------------------

    def run(self) -> Migration:
        """Preflight (every run: tables, stream and schemas can have changed), then every phase
        not done yet, then ready; returns when ready; the caller follows or stops the tail."""
        steps: Mapping[str, Callable[[], None]] = {
            "create": self._create,
            "capture": self._capture,
            "backfill": self._backfill,
            "catch-up": self._catch_up,
            "verify": self._verify,
            "ready": self._ready,
        }
        self._step("preflight", self._preflight)
        if "capture" in self.record.done and (
            not self._exporting or "backfill" in self.record.done
        ):
            self._start_tail()
        for phase, step in steps.items():
            if phase not in self.record.done:
                self._step(phase, step)
        self.record.state = "ready"
        self.store.save(self.record)
        return self.record

    def _step(self, phase: str, step: Callable[[], None]) -> None:
        self.record.begin(phase, time.time())
        self.store.save(self.record)
        self.say(f"[migrate] {phase}")
        step()
        self.record.end(phase, time.time())
        self.store.save(self.record)

    # -- the phases -------------------------------------------------------------------------

    def _preflight(self) -> None:
        self.preflight = check(
            self.source,
            self.target,
            self.options.rate,
            create=self.options.create,
            export_to=self.options.export_to,
            kinesis_stream=self.options.kinesis_stream,
        )
        self.record.counts["source_items"] = self.preflight.source.item_count
        self.say(
            f"[migrate] backfill of about {self.preflight.source.item_count} items, at most "
            f"{self.preflight.items_per_second:.0f} items/s (--rate): at least "
            f"{age_text(self.preflight.estimate_seconds)}; the progress shows the ETA at the "
            "measured rate"
        )

    def _create(self) -> None:
        if not self.options.create or definitions.exists(self.target):
            return
        definitions.create_like(
            self.target, self._checked.source, with_stream=self.options.with_stream
        )
        self.say(f"[migrate] created {self.target} like {self.source}")

    @property
    def _transform_params(self) -> dict[str, object] | None:
        shape = self.options.transform
        return None if shape.empty else shape.to_params()

    @property
    def _exporting(self) -> bool:
        return self.options.export_to is not None

    def _capture(self) -> None:
        self.record.captured_at = time.time()
        if self.options.export_to is not None:
            to = self.options.export_to
            self.record.export_arn = dynamo.start_export(
                self.source, to.bucket, to.prefix, at=self.record.captured_at
            )
            self.say(f"[migrate] export {self.record.export_arn} asked for")
        self.store.save(self.record)
        if not self._exporting:
            self._start_tail()

    def _start_tail(self) -> None:
        assert self.record.captured_at is not None
        targets = [Target.replica(self.target.location, self.options.transform)]
        if self.options.backup is not None:
            targets.append(Target.backup(self.options.backup))
        self.tail = Tail(
            self.source,
            tuple(targets),
            self.record.name,
            self.record.captured_at,
            self.options.turnover_at,
            self.options.kinesis_stream,
        )
        self.tail.start()

    def _backfill(self) -> None:
        if self._exporting:
            self._load_export()
            self._start_tail()
            return
        options = DiffOptions(
            self.source.location.spec,
            self.target.location.spec,
            backfill=True,
            rate=self._checked.items_per_second,
            item_bytes=self._checked.item_bytes,
            transform=self._transform_params,
        )
        plan = Plan("fanout", self.options.segments)
        outcome = self._bulk(options, plan, self._expected(1.0))
        self.record.counts["copied"] = outcome.totals.get("backfilled", 0)
        self.record.counts["copy_failed"] = outcome.totals.get("backfill_failed", 0)
        if self.record.counts["copy_failed"]:
            raise MigrationFailed(
                f"{self.record.counts['copy_failed']} items could not be copied (see the dead "
                "letters); rerun the same command to try the backfill again"
            )

    def _load_export(self) -> None:
        """Wait for the export, then load its data files (segment tasks, at the rate)."""
        assert self.record.export_arn is not None
        shown_at = {"seconds": 0.0}

        def progress(status: dynamo.ExportStatus, elapsed: float) -> None:
            if elapsed - shown_at["seconds"] >= self.options.progress_interval:
                shown_at["seconds"] = elapsed
                self.say(f"[progress] export: {status.status.lower()} after {age_text(elapsed)}")

        done = export.read(
            export.folder_of(export.wait(self.source, self.record.export_arn, progress))
        )
        params = {
            "source": str(done.location),
            "target": self.target.location.spec,
            "files": list(done.files),
            "rate": self._checked.items_per_second,
            "item_bytes": self._checked.item_bytes,
            "schema": None,
            "layout": done.kind,
            "transform": self._transform_params,
        }
        spec = self._spec("restore-table", params, done.items, "read")
        outcome = self._run_bulk(spec, Plan("fanout", self.options.segments), True)
        self.record.counts["copied"] = outcome.totals.get("restored", 0)
        self.record.counts["copy_failed"] = outcome.totals.get("failed", 0)
        if self.record.counts["copy_failed"]:
            raise MigrationFailed(
                f"{self.record.counts['copy_failed']} items could not be loaded; rerun the same "
                "command to load the export again"
            )

    @property
    def _checked(self) -> Preflight:
        """What this run's preflight found (every run starts with it)."""
        assert self.preflight is not None
        return self.preflight

    def _expected(self, share: float) -> int:
        """The items a scan of ``share`` of SOURCE is expected to compare (the progress's
        100 %): DynamoDB's item count, refreshed about every six hours."""
        return math.ceil(self._checked.source.item_count * share)

    def _bulk(
        self,
        options: DiffOptions,
        plan: Plan,
        expected: int,
        resume: str | None = None,
        on_record: Callable[[str], None] = lambda _: None,
    ) -> Outcome:
        counter = "scanned" if options.backfill else "compared"
        spec = self._spec("diff", options.to_params(), expected, counter, on_record)
        return self._run_bulk(spec, plan, options.backfill)

    def _spec(
        self,
        kind: str,
        params: Mapping[str, object],
        expected: int,
        counter: str,
        on_record: Callable[[str], None] = lambda _: None,
    ) -> BulkSpec:
        return BulkSpec(
            kind=kind,
            params=params,
            on_record=on_record,
            label={"migration": self.record.name, "phase": self.record.phase},
            name=self.record.phase,
            estimate=expected,
            counter=counter,
        )

    def _run_bulk(self, spec: BulkSpec, plan: Plan, backfill: bool) -> Outcome:
        """Run a job (a backfill's is remembered in the record, and waited for again by a
        rerun while its segments still exist); MigrationFailed when a segment failed."""

        def remember(job: Job) -> None:
            if backfill:
                self.record.backfill_job = job.id
                self.store.save(self.record)

        resume = self.record.backfill_job if backfill else None
        if resume and not _resumable(resume):
            resume = None
        outcome = execute(
            plan,
            spec,
            self.options.pickup_timeout,
            self.options.progress_interval,
            on_job=remember,
            resume=resume,
        )
        if outcome.failures:
            failed = ", ".join(f"{k}: {v}" for k, v in sorted(outcome.failures.items()))
            if backfill:
                self.record.backfill_job = None
            raise MigrationFailed(f"{self.record.phase} segments failed ({failed})")
        return outcome

    def _catch_up(self) -> None:
        assert self.tail is not None
        self._watch_writes()
        said = time.monotonic()
        while True:
            behind, waiting = self._observe()
            if self.tail.read_once and behind <= self.options.lag_threshold and waiting == 0:
                return
            if time.monotonic() - said >= self.options.progress_interval:
                self.say(f"[progress] catch-up: {_following(behind, waiting)}")
                said = time.monotonic()
            time.sleep(CATCH_UP_POLL_SECONDS)

    def _observe(self) -> tuple[float, int]:
        """How far behind the stream's tip the tail reads, and the keys it enqueued that no
        worker started; kept in the record."""
        assert self.tail is not None
        self.tail.check()
        behind, waiting = self.tail.behind_seconds, self.tail.pending_keys()
        self.record.behind_seconds = round(behind, 3)
        self.record.counts["keys_waiting"] = waiting
        self.store.save(self.record)
        return behind, waiting

    def _verify(self) -> None:
        """Diff with repair over all segments (or a sample), then re-verify every key it
        found: each must read equal on both sides (strongly consistent) within
        ``RECHECK_SECONDS``, the time for a change still in flight to be replicated."""
        self._watch_writes()
        total = self.options.verify_segments
        sample = self.options.verify.segments(total, random.Random())
        plan = Plan("fanout", total, only=sample)
        options = DiffOptions(
            self.source.location.spec,
            self.target.location.spec,
            repair=True,
            transform=self._transform_params,
        )
        found: list[Key] = []

        def collect(line: str) -> None:
            entry = json.loads(line)
            if entry["kind"] in KINDS:
                found.append(Key.from_wire(entry["key"]))

        expected = self._expected(len(plan.wanted) / total)
        totals = self._bulk(options, plan, expected, on_record=collect).totals
        repaired = sum(totals.get(f"repaired_{kind}", 0) for kind in KINDS)
        shape = self.options.transform
        names = [k["AttributeName"] for k in self._checked.source.key_schema]
        view = None if shape.empty else load_transform(shape, names)
        unequal = settle(self.source, self.target, found, RECHECK_SECONDS, view or unchanged)
        assert self.tail is not None
        live = len(self.tail.changed(found))
        self.tail.unwatch()
        self.record.counts.update(
            {
                "discrepancies_found": len(found),
                "discrepancies_live_writes": live,
                "discrepancies_missed": len(found) - live,
                "discrepancies_repaired": repaired,
                "verified_segments": len(plan.wanted),
            }
        )
        self.say(
            f"[migrate] verify: {len(found)} discrepancies, {live} explained by writes made "
            f"since the catch-up, {len(found) - live} missed by the backfill; "
            f"{repaired} repaired"
        )
        if unequal or repaired != len(found):
            raise MigrationFailed(
                f"verify: {len(found)} discrepancies found, {repaired} repaired, {len(unequal)} "
                f"still differ after {RECHECK_SECONDS:.0f} s (e.g. {unequal[:1]}); check the "
                "workers and the dead letters, then rerun"
            )

    def _watch_writes(self) -> None:
        """Remember the keys written from now on (less the time the tail may read behind):
        a discrepancy on one of them is explained by a live write, not missed by the backfill."""
        assert self.tail is not None
        self.tail.watch(time.time() - self.options.lag_threshold)

    def _ready(self) -> None:
        self.record.counts["dead_letters"] = self._dead_letters()

    def _dead_letters(self) -> int:
        target = str(self.target.location)
        return sum(1 for _, entry in deadletters.entries(connection()) if entry.target == target)

    # -- after ready --------------------------------------------------------------------------

    def report(self) -> str:
        """The one ``"phase": "ready"`` line."""
        record = self.record
        seconds = dict(record.seconds)
        seconds.setdefault("ready", 0.0)
        return json.dumps(
            {
                "phase": "ready",
                "name": record.name,
                "source": record.source,
                "target": record.target,
                "items_copied": record.counts.get("copied", 0),
                "transform": self.options.transform.identity or None,
                **replication_lag(record),
                "discrepancies_found": record.counts.get("discrepancies_found", 0),
                "discrepancies_live_writes": record.counts.get("discrepancies_live_writes", 0),
                "discrepancies_missed": record.counts.get("discrepancies_missed", 0),
                "discrepancies_repaired": record.counts.get("discrepancies_repaired", 0),
                "verified_segments": record.counts.get("verified_segments", 0),
                "dead_letters": record.counts.get("dead_letters", 0),
                "seconds": seconds,
            },
            sort_keys=True,
        )

    def follow(self) -> None:
        """Keep tailing, the tail's position kept fresh in the record, until ``replicator
        migrate stop``."""
        said = time.monotonic()
        while not self.store.stop_requested(self.record.name):
            behind, waiting = self._observe()
            if time.monotonic() - said >= self.options.progress_interval:
                self.say(f"[progress] following: {_following(behind, waiting)}")
                said = time.monotonic()
            time.sleep(CATCH_UP_POLL_SECONDS)


def replication_lag(record: Migration) -> dict[str, float | None]:
    """TARGET's replication lag as ``replicator status TARGET`` shows it (``lag_ms_p50``,
    ``lag_ms_p99``; None before the first change applied)."""
    lag = stats.lag_ms(connection(), shown(record.target))
    return {"lag_ms_p50": lag.get("lag_ms_p50"), "lag_ms_p99": lag.get("lag_ms_p99")}


def _following(behind: float, waiting: int) -> str:
    return f"the tail reads {behind:.1f} s behind the stream's tip, {waiting} keys waiting"


def _resumable(job_id: str) -> bool:
    """A backfill job of an earlier run that can be waited for again (it still exists)."""
    from tasks.jobs.redis_store import RedisJobStore

    try:
        snapshot = RedisJobStore(connection()).snapshot(job_id)
    except (ReplicatorError, TransientError):
        return False
    return not any(s.error for s in snapshot.segments)
