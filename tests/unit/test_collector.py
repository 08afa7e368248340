"""The garbage-collector settings of worker and bulk-command processes."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tasks.core import collector


@pytest.fixture
def restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored")
def test_tune_freezes_start_up_objects_and_collects_young_ones_less_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(collector, "_tuned", False)
    gc.set_threshold(700, 10, 10)
    collector.tune()
    assert gc.get_threshold() == (collector.YOUNGEST, 10, 10)
    assert gc.get_freeze_count() > 0
    gc.set_threshold(700, 10, 10)
    collector.tune()  # once per process
    assert gc.get_threshold() == (700, 10, 10)
