"""Capped exponential backoff with full jitter (one formula for every retry in the project)."""

from __future__ import annotations

import random


def delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): uniform in [0, min(cap, base*2^n)]."""
    return random.uniform(0, min(cap, base * (2 ** min(attempt, 32))))
