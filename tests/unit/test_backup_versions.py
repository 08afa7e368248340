"""Ordering an object's history and choosing the state in force at a time (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

from tasks.aws.s3 import Version, newest_first
from tasks.backup import history
from tasks.backup.history import state_at, timeline
from tasks.backup.incremental import CHANGE_TIME
from tasks.backup.rollback import Window, decide


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


# -- the timeline of change times and the rollback's decision (pure: change times given) --------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _at(second: float) -> datetime:
    return T0 + timedelta(seconds=second)


def _stored(vid: str, written: int, etag: str = "") -> Version:
    return Version("k", vid, _at(written), False, False, etag or f"etag-{vid}")


def _marker(vid: str, written: int) -> Version:
    return Version("k", vid, _at(written), True, False)


def _line(versions: list[Version], changed: dict[str, float], point: float, horizon: float) -> Any:
    """``timeline`` with the change times of ``changed`` (version id -> second) as metadata."""
    asked: list[str] = []

    def head(bucket: str, key: str, version_id: str | None = None) -> dict[str, str]:
        asked.append(str(version_id))
        if str(version_id) not in changed:
            return {}  # written before change times were recorded: S3's time
        return {CHANGE_TIME: str(round(_at(changed[str(version_id)]).timestamp() * 1000))}

    with patch.object(history.s3, "head", head):
        line = timeline(newest_first(versions), "bucket", _at(point), _at(horizon))
    return line, asked


def test_a_change_made_before_t_and_backed_up_after_it_is_in_force_at_t() -> None:
    versions = [_stored("v1", 10), _stored("v2", 20)]  # v2 written at 20 for a change at 14

    line, asked = _line(versions, {"v2": 14}, point=15, horizon=15)

    assert line.at(_at(15)).version_id == "v2"
    assert line.at(_at(13)).version_id == "v1"
    assert asked == ["v2"]  # v1 was written long before T: its time needs no request


def test_versions_read_only_until_one_took_effect_after_the_horizon() -> None:
    versions = [_stored("v1", 10), _stored("v2", 30), _stored("v3", 40), _marker("d", 50)]

    line, asked = _line(versions, {"v2": 29, "v3": 39}, point=20, horizon=20)

    assert asked == ["v2"] and line.at(_at(20)).version_id == "v1"
    assert line.changed(_at(20)) and not line.changed(_at(20), _at(28))


def test_a_version_never_takes_effect_before_one_written_ahead_of_it() -> None:
    # v2's change is older than v1's (a delayed message): it takes effect with v1, after it
    versions = [_stored("v1", 10), _stored("v2", 12)]

    line, _ = _line(versions, {"v1": 9, "v2": 5}, point=9.5, horizon=9.5)

    assert [t.timestamp() - T0.timestamp() for t in line.times] == [9, 9]
    assert line.at(_at(9.5)).version_id == "v2"


def _decide(
    versions: list[Version], point: int, end: int | None = None, backup: bool = True
) -> str:
    window = Window(_at(point), _at(end) if end is not None else None)
    line, _ = _line(versions, {}, point, end if end is not None else point)
    return decide(line, window, backup).action


def test_decisions() -> None:
    good, bad = _stored("v1", 10, "A"), _stored("v2", 30, "B")
    back = _stored("v3", 40, "A")  # the same body as v1 again

    assert _decide([], 20) == "unknown"
    assert _decide([good], 20) == "unchanged"
    assert _decide([good, bad], 20) == "put"
    assert _decide([good, bad, back], 20) == "unchanged"  # by ETag, no write
    assert _decide([good, bad, back], 20, backup=False) == "put"  # compared with the table
    assert _decide([bad], 20) == "delete"  # created after T
    assert _decide([good, _marker("d", 30)], 20) == "put"  # deleted after T
    assert _decide([good, _marker("d", 15)], 20) == "unchanged"  # absent then and now
    # --since 20 --at 35: the window is (20, 35]
    assert _decide([good, bad], 20, 35) == "put"
    assert _decide([good, bad, back], 20, 35) == "changed-after"
    assert _decide([good, _stored("v4", 50)], 20, 35) == "unchanged"  # changed after it only
