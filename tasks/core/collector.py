"""Garbage-collector settings for processes that handle many items (workers, bulk commands).

A scanned page is thousands of small dicts and lists. CPython's cyclic collector runs by counts
of container allocations: with its default thresholds (700, 10, 10) a diff worker made a full
collection every few scan pages, and each walked every object the process holds (Celery, boto3,
the service models: about 150,000), some 100 ms each: over a third of the worker's CPU. Items
are acyclic and freed by reference counting as soon as they are dropped; collecting cycles less
often costs little memory.

``tune`` (once per process, after start-up) freezes what exists by then, which the collector
then never walks again, and collects the youngest generation every 10,000 allocations instead of
700, so that full collections are about fourteen times rarer.
"""

from __future__ import annotations

import gc
import threading

YOUNGEST = 10_000
_lock = threading.Lock()
_tuned = False


def tune() -> None:
    """Freeze the objects of start-up and raise the youngest generation's threshold; once."""
    global _tuned  # noqa: PLW0603 - a per-process flag
    with _lock:
        if _tuned:
            return
        gc.freeze()
        _, middle, oldest = gc.get_threshold()
        gc.set_threshold(YOUNGEST, middle, oldest)
        _tuned = True
