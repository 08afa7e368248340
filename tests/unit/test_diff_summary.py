"""diff-tables' exit status from its summary: like diff, plus 3 for failures."""

from __future__ import annotations

from typing import Any

import pytest

from commands.diff_tables import exit_status


def result(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "failed_segments": {},
        "discrepancies": 0,
        "backfill_failed": 0,
        "repaired": {"missing": 0, "extraneous": 0, "different": 0},
    }
    return {**base, **values}


@pytest.mark.parametrize(
    ("values", "status"),
    [
        ({}, 0),
        ({"discrepancies": 3}, 1),
        ({"discrepancies": 3, "repaired": {"missing": 1, "extraneous": 1, "different": 1}}, 0),
        ({"discrepancies": 3, "repaired": {"missing": 1, "extraneous": 1, "different": 0}}, 1),
        ({"backfill_failed": 2}, 1),
        ({"failed_segments": {"2": "table gone"}, "discrepancies": 1}, 3),
    ],
)
def test_exit_status(values: dict[str, Any], status: int) -> None:
    assert exit_status(result(**values)) == status
