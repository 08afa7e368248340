"""Points in time given by users: ISO 8601 or epoch milliseconds."""

from __future__ import annotations

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
