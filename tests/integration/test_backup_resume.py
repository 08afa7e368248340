"""A bulk segment delivered again after a crash: counts nothing twice, writes everything once."""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from tasks.backup import restore as restore_module
from tasks.backup.dump import backup_work
from tasks.backup.restore import restore_files_work
from tasks.jobs.memory_store import MemoryJobStore
from tasks.jobs.model import run_segment
from tests.integration.test_backup_incremental import make_bucket
from tests.support.tables import client, create_table, scan_all

BIG = "x" * 4000  # ~4 KB items: the 400 items span two 1 MB scan pages


def _fill(moto_url: str, count: int) -> None:
    ddb = client(moto_url)
    for start in range(0, count, 25):
        requests = [
            {"PutRequest": {"Item": {"id": {"S": f"k{i:04d}"}, "pad": {"S": BIG}}}}
            for i in range(start, min(count, start + 25))
        ]
        ddb.batch_write_item(RequestItems={"primary": requests})


def _crash_after_first_page(store: MemoryJobStore, job: Any, work: Any) -> None:
    store.start(job.id, 0)
    pages = work(None)
    store.advance(job.id, 0, next(pages))
    pages.close()  # the worker dies here; the segment stays "running" with its checkpoint


def test_backup_and_restore_segments_resume_without_double_counting(
    env: dict[str, str], moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(restore_module, "PAGE_ITEMS", 100)
    create_table(moto_url, "primary")
    _fill(moto_url, 400)
    s3 = make_bucket(moto_url)
    store = MemoryJobStore()
    params = {"table": f"{moto_url}/primary", "s3url": "s3://backups/dumps", "jobid": "j"}
    job = store.create("backup-table", 1, params)

    _crash_after_first_page(store, job, backup_work(job, 0))
    assert 0 < store.snapshot(job.id).totals["items"] < 400
    counts = run_segment(store, job, 0, backup_work(job, 0))

    assert counts["items"] == 400 and counts["segments_written"] == 1
    body = gzip.decompress(s3.get_object(Bucket="backups", Key="dumps/j/0")["Body"].read())
    assert len(body.splitlines()) == 400

    create_table(moto_url, "restored")
    restore = {
        "source": "s3://backups/dumps/j",
        "target": f"{moto_url}/restored",
        "files": ["dumps/j/0"],
        "rate": 0,
        "schema": None,
    }
    job = store.create("restore-table", 1, restore)
    work = restore_files_work(job, 0)
    _crash_after_first_page(store, job, work)
    done_before = store.snapshot(job.id).totals["restored"]
    assert done_before == 100
    counts = run_segment(store, job, 0, restore_files_work(job, 0))

    assert counts["restored"] == 400 and counts.get("failed", 0) == 0
    assert len(scan_all(moto_url, "restored")) == 400
