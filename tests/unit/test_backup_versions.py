"""Ordering an object's history and choosing the state in force at a time (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from tasks.aws.s3 import Version, newest_first
from tasks.backup.history import state_at


def _v(vid: str, second: int, deleted: bool = False, latest: bool = False) -> Version:
    return Version("k", vid, datetime(2026, 1, 1, 0, 0, second, tzinfo=UTC), deleted, latest)


def test_versions_and_markers_merge_newest_first_and_latest_wins_a_tie() -> None:
    # S3 lists versions newest first and delete markers apart, each to the second
    versions = [_v("v3", 5), _v("v2", 3), _v("v1", 1)]
    markers = [_v("d2", 5, deleted=True, latest=True), _v("d1", 2, deleted=True)]

    merged = newest_first(versions + markers)

    assert [v.version_id for v in merged] == ["d2", "v3", "v2", "d1", "v1"]


def test_state_at_a_time() -> None:
    history = newest_first([_v("v2", 4), _v("v1", 1), _v("d1", 2, deleted=True)])

    def at(second: int) -> str | None:
        found = state_at(history, datetime(2026, 1, 1, 0, 0, second, tzinfo=UTC))
        return found.version_id if found else None

    assert [at(s) for s in range(6)] == [None, "v1", "d1", "d1", "v2", "v2"]
