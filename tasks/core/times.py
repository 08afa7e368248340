"""Points in time and durations given by users (ISO 8601 or epoch milliseconds; ``30s``,
``15m``, ``24h``, ``7d``), and ages shown to them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from tasks.core.errors import InvalidInputError


def parse_moment(text: str) -> datetime:
    """A UTC datetime from ``2026-11-27T10:00:00Z`` (UTC without offset) or epoch ms."""
    value = text.strip()
    if value.isdigit():
        millis = int(value)
        return datetime.fromtimestamp(millis // 1000, UTC).replace(microsecond=millis % 1000 * 1000)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInputError(
            f"invalid time {text!r}: expected ISO 8601 (2026-11-27T10:00:00Z) or epoch milliseconds"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_time(text: str) -> float:
    """Epoch seconds of ``parse_moment(text)``."""
    return parse_moment(text).timestamp()


def age_text(seconds: float) -> str:
    """A duration as people read it: 3s, 4m05s, 2h07m, 3d04h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds of ``30s``, ``15m``, ``24h``, ``7d`` (a bare number is seconds); more than 0."""
    found = _DURATION.fullmatch(text.strip())
    seconds = float(found[1]) * _UNITS[found[2] or "s"] if found else 0.0
    if not seconds > 0:
        raise InvalidInputError(
            f"{what} must be a duration above 0 such as 30s, 15m, 24h or 7d, got {text!r}"
        )
    return seconds
