"""What a pipeline's verifier does: ``verify = { every = "24h", rate = "5%", repair = true,
ignore_attributes = [...] }`` in a pipelines file, or the flags of ``replicator verify``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tasks.aws.capacity import Rate
from tasks.core.errors import ConfigurationError, InvalidInputError
from tasks.core.times import parse_duration

DEFAULT_EVERY = "24h"
DEFAULT_RATE = "5%"
DEFAULT_SEGMENTS = 16
_DEFAULT_RATE = Rate(0.05, share=True)
KEYS = ("every", "rate", "repair", "ignore_attributes", "segments")


@dataclass(frozen=True)
class VerifySettings:
    every: float = 24 * 3600.0  # seconds a whole pass takes
    rate: Rate = _DEFAULT_RATE  # item reads per second over both tables, at most
    repair: bool | None = None  # None: repair when the pipeline replicates
    ignore: tuple[str, ...] = ()
    segments: int = DEFAULT_SEGMENTS

    @classmethod
    def of(
        cls,
        every: str = DEFAULT_EVERY,
        rate: str = DEFAULT_RATE,
        repair: bool | None = None,
        ignore: tuple[str, ...] = (),
        segments: int = DEFAULT_SEGMENTS,
    ) -> VerifySettings:
        """From text as users give it; InvalidInputError naming what is wrong."""
        if segments < 1:
            raise InvalidInputError(f"segments must be at least 1, got {segments}")
        return cls(parse_duration(every, "every"), Rate.parse(rate), repair, ignore, segments)

    @classmethod
    def from_file(cls, table: Mapping[str, Any]) -> VerifySettings:
        """A pipelines file's ``verify = { ... }``; ConfigurationError naming what is wrong."""
        unknown = sorted(set(table) - set(KEYS))
        if unknown:
            raise ConfigurationError(f"unknown verify keys {unknown} (known: {list(KEYS)})")
        ignore = table.get("ignore_attributes", [])
        if not isinstance(ignore, list) or not all(isinstance(a, str) for a in ignore):
            raise ConfigurationError("ignore_attributes must be a list of names")
        repair = table.get("repair")
        if repair is not None and not isinstance(repair, bool):
            raise ConfigurationError("repair must be true or false")
        segments = table.get("segments", DEFAULT_SEGMENTS)
        if not isinstance(segments, int) or isinstance(segments, bool):
            raise ConfigurationError("segments must be an integer")
        try:
            return cls.of(
                str(table.get("every", DEFAULT_EVERY)),
                str(table.get("rate", DEFAULT_RATE)),
                repair,
                tuple(ignore),
                segments,
            )
        except InvalidInputError as exc:
            raise ConfigurationError(str(exc).replace("--rate", "rate")) from exc

    def repairs(self, replicates: bool) -> bool:
        return replicates if self.repair is None else self.repair
