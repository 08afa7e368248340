"""backup-table: one scan segment of a table to one gzip JSONL object at ``PREFIX/JOBID/SEGMENT``.

The segment streams: scan pages go through gzip into multipart parts, so memory stays bounded
whatever the table size. A segment cannot resume a half-written object, so a redelivered segment
starts again and first takes back the counts its earlier delivery recorded.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

from tasks.aws import dynamo
from tasks.backup.format import GzipJsonlWriter, schema_metadata
from tasks.core.config import settings
from tasks.core.locations import S3Location, parse_s3
from tasks.jobs.model import Job, Page, Work


def new_job_id() -> str:
    """A random job id, as the original tool made them (16 hex digits)."""
    return secrets.token_hex(8)


def segment_object(destination: S3Location, job_id: str, segment: int) -> str:
    return destination.key(job_id, str(segment))


def undo(checkpoint: Any) -> Iterator[Page]:
    """After a partial delivery: one page taking back what it counted (the work starts over)."""
    counted = (checkpoint or {}).get("counted") or {}
    if counted:
        yield Page({k: -v for k, v in counted.items()}, None)


def backup_work(job: Job, segment: int) -> Work:
    """The segment's work for ``tasks.jobs.model.run_segment``: pages count items and bytes."""
    params, segments = job.params, job.segments
    table, destination = settings().table(params["table"]), parse_s3(params["s3url"])
    key = segment_object(destination, params["jobid"], segment)

    def work(checkpoint: Any) -> Iterator[Page]:
        yield from undo(checkpoint)
        schema = dynamo.schema(table)
        counted = {"items": 0, "bytes": 0}
        with GzipJsonlWriter(destination.bucket, key, schema_metadata(schema)) as out:
            for items, _ in dynamo.scan_pages(table, segment, segments):
                for item in items:
                    out.write(item)
                delta = {
                    "items": out.items - counted["items"],
                    "bytes": out.bytes - counted["bytes"],
                }
                counted = {"items": out.items, "bytes": out.bytes}
                yield Page(delta, {"counted": counted})
        record = {
            "segment": segment,
            "items": out.items,
            "bytes": out.bytes,
            "object": f"s3://{destination.bucket}/{key}",
        }
        final = {"items": out.items, "bytes": out.bytes, "segments_written": 1}
        yield Page(
            {"bytes": out.bytes - counted["bytes"], "segments_written": 1},
            {"counted": final},
            [json.dumps(record, sort_keys=True)],
        )

    return work
