"""Segment options: where a bulk command's segments run, and what is bad usage."""

from __future__ import annotations

import pytest

from commands.bulk import LOCAL_SEGMENTS, plan
from tasks.errors import InvalidInputError


def test_no_options_run_every_segment_here() -> None:
    chosen = plan(None, None)
    assert (chosen.mode, chosen.wanted) == ("local", list(range(LOCAL_SEGMENTS)))


def test_segments_alone_fan_out() -> None:
    chosen = plan(None, 8)
    assert (chosen.mode, chosen.segments, chosen.wanted) == ("fanout", 8, list(range(8)))


def test_one_segment_runs_here() -> None:
    chosen = plan(3, 10)
    assert (chosen.mode, chosen.wanted) == ("one", [3])


@pytest.mark.parametrize(
    ("segment", "segments", "message"),
    [
        (1, None, "needs --segments"),
        (10, 10, "between 0 and 9"),
        (-1, 4, "between 0 and 3"),
        (None, 0, "at least 1"),
        (None, -2, "at least 1"),
    ],
)
def test_bad_segment_options(segment: int | None, segments: int | None, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        plan(segment, segments)
