"""The one chunking helper: lists of up to ``size`` things, in order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def batched(things: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of up to ``size`` things, in order (``itertools.batched`` arrives in Python 3.12)."""
    if size < 1:
        raise ValueError("size must be at least 1")
    it = iter(things)
    while batch := list(islice(it, size)):
        yield batch
