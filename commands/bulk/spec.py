"""What a bulk command asks for: the job's kind and parameters, and how to show its records."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tasks.jobs.model import Job
from tasks.kinds import KINDS, Kind


def _all_counts(totals: Mapping[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(totals.items()))


@dataclass
class BulkSpec:
    """One bulk run: the job's kind (``tasks.kinds``) and parameters, and how to report it.

    ``on_record`` receives each record a segment appended (a line to print or report);
    ``describe`` turns the running totals into the text of a progress line; ``estimate`` is the
    expected total of the kind's rate counter (the progress bar's length), when known;
    ``label`` is shown beside the job's segments in monitors (Flower), e.g. a migration's phase;
    ``name`` labels the progress (the bar, and ``[progress] NAME:`` lines), the kind if unset.
    """

    kind: str
    params: Mapping[str, Any]
    on_record: Callable[[str], None] = lambda _: None
    describe: Callable[[Mapping[str, int]], str] = _all_counts
    estimate: int | None = None
    label: Mapping[str, str] = field(default_factory=dict)  # more to show in monitors
    name: str | None = None
    counter: str | None = None  # the counter shown per second and against ``estimate``

    @property
    def title(self) -> str:
        """What the progress bar is labelled with."""
        return self.name or self.kind

    @property
    def prefix(self) -> str:
        """What ``[progress]`` lines start with: ``NAME: `` when the spec has a name."""
        return f"{self.name}: " if self.name else ""

    @property
    def registered(self) -> Kind:
        return KINDS[self.kind]

    @property
    def rate_field(self) -> str:
        """The counter shown as items per second: ``counter``, or the kind's."""
        return self.counter or self.registered.rate_field


@dataclass
class Outcome:
    job: Job
    totals: dict[str, int]
    failures: dict[int, str]
    seconds: float
    segments: list[int] = field(default_factory=list)
