"""No false alarm: a key a sweep found unequal is drift only if the difference outlives the
changes that may still be on their way.

A *suspect* is re-read (strongly consistent, both sides: ``tasks.diff.recheck``) ``settle``
seconds after it was found, where ``settle`` is twice the pipeline's recent replication lag
(p99), and never less than ``SETTLE_FLOOR``. Equal: it was a change in flight; it is dropped.
Still unequal, it is read again ``settle`` later: only when it is unequal then too *and the
primary's item did not change between the two readings* (no newer change can be on its way) is it
confirmed, in the kind the last reading shows. A key whose primary keeps changing stays a suspect
(replication is busy with it).

A confirmed key is repaired through the ordinary replicate task, when repairing, and re-read
until it reads equal (*repaired*), up to ``REPAIR_READS`` times (then *unrepaired*: the dead
letters say why); otherwise it goes to the pass's report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tasks.core.typed_json import item_digest
from tasks.diff.match import DIFFERENT, EXTRANEOUS, MISSING
from tasks.diff.recheck import Reread

SETTLE_FLOOR = 2.0  # seconds
REPAIR_READS = 10
SUSPECT, REPAIRING = "suspect", "repairing"
# What judging a suspect's reading decided.
CLEAR, WAIT, CONFIRMED, REPAIRED, UNREPAIRED = (
    "clear",
    "wait",
    "confirmed",
    "repaired",
    "unrepaired",
)


def settle_seconds(lag_ms_p99: float | None) -> float:
    return max(SETTLE_FLOOR, 2 * (lag_ms_p99 or 0.0) / 1000)


@dataclass
class Suspect:
    """A key found unequal by pass ``number``, re-read at ``due`` (epoch seconds)."""

    number: int
    due: float
    stage: str = SUSPECT
    seen: str | None = None  # the primary's item digest at the last unequal reading
    reads: int = 0
    kind: str = ""  # once confirmed

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Suspect:
        return cls(**raw)


def kind_of(reading: Reread) -> str:
    if reading.replica is None:
        return MISSING
    return EXTRANEOUS if reading.shaped is None else DIFFERENT


def _digest(reading: Reread) -> str:
    return "absent" if reading.primary is None else item_digest(reading.primary)


def judge(suspect: Suspect, reading: Reread, now: float, settle: float) -> str:
    """What this reading makes of the suspect (it is updated: due, seen, reads, kind)."""
    suspect.reads += 1
    suspect.due = now + settle
    if suspect.stage == REPAIRING:
        if reading.readable and reading.equal:
            return REPAIRED
        return UNREPAIRED if suspect.reads >= REPAIR_READS else WAIT
    if not reading.readable:
        return WAIT
    if reading.equal:
        return CLEAR
    digest = _digest(reading)
    if suspect.seen == digest:
        suspect.kind = kind_of(reading)
        return CONFIRMED
    suspect.seen = digest  # first unequal reading, or the primary changed since the last one
    return WAIT
