"""Fair shares of shards among producers, decided from a lease snapshot."""

from __future__ import annotations

import random

from producer.balance import plan, share
from producer.leases import LeaseRecord, Snapshot

NOW = 1_000_000


def held(owner: str, token: int = 1, **extra: str) -> LeaseRecord:
    return LeaseRecord(owner=owner, token=token, expires=NOW + 10_000, **extra)


def snapshot(leases: dict[str, LeaseRecord], producers: list[str]) -> Snapshot:
    return Snapshot(NOW, leases, producers)


SHARDS = [f"s{i:02d}" for i in range(16)]


def test_share_is_the_ceiling() -> None:
    assert share(16, 3) == 6 and share(16, 1) == 16 and share(0, 2) == 0 and share(5, 0) == 5


def test_a_lone_producer_takes_every_free_shard() -> None:
    moves = plan("a", SHARDS, snapshot({}, ["a"]), random.Random(1))
    assert sorted(moves.take) == SHARDS and moves.ask == []


def test_its_own_leases_are_not_taken_again() -> None:
    leases = {s: held("a") for s in SHARDS[:6]}
    moves = plan("a", SHARDS, snapshot(leases, ["a", "b", "c"]), random.Random(1))
    assert moves.take == [] and moves.ask == []


def test_expired_leases_are_free_and_live_ones_are_not() -> None:
    leases = {s: held("gone") for s in SHARDS}
    leases["s00"] = LeaseRecord("gone", 3, NOW - 1)
    moves = plan("a", SHARDS, snapshot(leases, ["a"]), random.Random(1))
    assert moves.take == ["s00"]


def test_a_newcomer_asks_the_busiest_for_half_the_gap() -> None:
    leases = {s: held("a") for s in SHARDS}
    moves = plan("b", SHARDS, snapshot(leases, ["a", "b"]), random.Random(1))
    assert moves.take == [] and len(moves.ask) == 8
    assert {owner for _, owner, _ in moves.ask} == {"a"}


def test_no_shard_passes_back_and_forth_between_near_equals() -> None:
    leases = {s: held("a" if i < 6 else "b" if i < 11 else "c") for i, s in enumerate(SHARDS)}
    for me in ("a", "b", "c"):
        moves = plan(me, SHARDS, snapshot(leases, ["a", "b", "c"]), random.Random(1))
        assert moves.take == [] and moves.ask == [], me


def test_shards_asked_for_count_as_coming() -> None:
    leases = {s: held("a", wanted="b" if i < 8 else "") for i, s in enumerate(SHARDS)}
    moves = plan("b", SHARDS, snapshot(leases, ["a", "b"]), random.Random(1))
    assert moves.ask == []


def test_a_shard_handed_over_is_taken_only_by_the_one_who_asked() -> None:
    released = LeaseRecord("", 4, NOW + 10_000, reserved="b")
    leases = {"s00": released, **{s: held("a") for s in SHARDS[1:4]}}
    ready = SHARDS[:4]
    assert plan("b", ready, snapshot(leases, ["a", "b"])).take == ["s00"]
    assert plan("c", ready, snapshot(leases, ["a", "b", "c"])).take == []
    late = LeaseRecord("", 4, NOW - 1, reserved="b")  # the promise expired: anyone may take it
    assert plan("c", ready, snapshot({**leases, "s00": late}, ["a", "c"])).take == ["s00"]


def test_only_ready_shards_count() -> None:
    leases = {s: held("a") for s in SHARDS[:4]}
    moves = plan("b", SHARDS[:4], snapshot(leases, ["a", "b"]), random.Random(1))
    assert len(moves.ask) == 2
