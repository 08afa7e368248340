"""incremental-backfill: every item of one scan segment to its incremental backup object.

Scanned items are used for their keys only: each page goes through ``tasks.replication.sync``
(a strongly consistent read and the stale-write guard), so a backfill running beside the stream
backup never writes an older state over a newer one. Unchanged objects are not written again. The
checkpoint is the scan position after each page, so a redelivered segment resumes where it
stopped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

from tasks.aws import dynamo
from tasks.backup.incremental import Change, S3Sink
from tasks.core.config import settings
from tasks.core.keys import Key
from tasks.core.locations import parse_s3
from tasks.core.typed_json import from_wire, to_wire
from tasks.jobs.model import Job, Page, Work
from tasks.replication.sync import sync_keys


def backfill_work(job: Job, segment: int) -> Work:
    """The segment's work for ``tasks.jobs.model.run_segment``."""
    params, segments = job.params, job.segments
    table, destination = settings().table(params["table"]), parse_s3(params["s3url"])

    def work(checkpoint: Any) -> Iterator[Page]:
        if checkpoint and checkpoint.get("done"):
            return
        start = from_wire(checkpoint["start"]) if checkpoint else None
        schema = dynamo.schema(table)
        actions: Counter[str] = Counter()

        def count(change: Change) -> None:
            actions[change.action] += 1

        sink = S3Sink(destination, table.name, on_change=count)
        pages = dynamo.scan_pages(table, segment, segments, start_key=start)
        for items, last in pages:
            actions.clear()
            keys = [Key.of_item(i, schema) for i in items]
            outcome = sync_keys(table, sink, keys, max_rounds=settings().guard_max_rounds)
            records = [
                json.dumps({"failed": json.loads(k), "reason": f.reason}, sort_keys=True)
                for k, f in outcome.failed.items()
            ]
            counts = {"scanned": len(items), "failed": len(outcome.failed), **actions}
            position = {"start": to_wire(last), "done": False} if last else {"done": True}
            yield Page(counts, position, records)

    return work
