"""Continuous verification's pure parts: when a suspect becomes drift, the settings a pipelines
file or the flags give, and durations."""

from __future__ import annotations

import pytest

from tasks.core.errors import ConfigurationError, InvalidInputError
from tasks.core.keys import Key
from tasks.core.pipelines import parse
from tasks.core.times import parse_duration
from tasks.diff.recheck import Reread
from tasks.verify import confirm
from tasks.verify.confirm import (
    CLEAR,
    CONFIRMED,
    REPAIR_READS,
    REPAIRED,
    REPAIRING,
    UNREPAIRED,
    WAIT,
    Suspect,
)
from tasks.verify.settings import VerifySettings

KEY = Key.of({"id": {"S": "k"}})


def item(n: int) -> dict[str, dict[str, str]]:
    return {"id": {"S": "k"}, "n": {"N": str(n)}}


def reading(primary: int | None, replica: int | None) -> Reread:
    left = None if primary is None else item(primary)
    right = None if replica is None else item(replica)
    return Reread(KEY, left, right, left == right, True, left)


def test_a_difference_is_drift_only_when_it_outlives_an_unchanged_primary() -> None:
    suspect = Suspect(1, 0.0)
    assert confirm.judge(suspect, reading(2, 1), 10.0, 2.0) == WAIT  # first unequal reading
    assert suspect.due == 12.0
    assert confirm.judge(suspect, reading(3, 2), 12.0, 2.0) == WAIT  # the primary moved on
    assert confirm.judge(suspect, reading(3, 2), 14.0, 2.0) == CONFIRMED
    assert suspect.kind == "different"


def test_a_change_in_flight_clears_and_unreadable_waits() -> None:
    suspect = Suspect(1, 0.0)
    assert confirm.judge(suspect, Reread(KEY, None, None, False, False), 1.0, 2.0) == WAIT
    assert confirm.judge(suspect, reading(2, 2), 3.0, 2.0) == CLEAR


@pytest.mark.parametrize(
    ("primary", "replica", "kind"),
    [(1, None, "missing"), (None, 1, "extraneous"), (1, 2, "different")],
)
def test_the_kind_is_what_the_last_reading_shows(
    primary: int | None, replica: int | None, kind: str
) -> None:
    suspect = Suspect(1, 0.0)
    confirm.judge(suspect, reading(primary, replica), 1.0, 2.0)
    assert confirm.judge(suspect, reading(primary, replica), 3.0, 2.0) == CONFIRMED
    assert suspect.kind == kind


def test_a_filtered_out_primary_item_on_the_replica_is_extraneous() -> None:
    left = item(1)
    filtered = Reread(KEY, left, item(1), False, True, None)  # shape(primary) is None
    assert confirm.kind_of(filtered) == "extraneous"


def test_a_repair_is_read_until_equal_then_given_up() -> None:
    suspect = Suspect(1, 0.0, stage=REPAIRING)
    assert confirm.judge(suspect, reading(1, 2), 1.0, 2.0) == WAIT
    assert confirm.judge(suspect, reading(1, 1), 3.0, 2.0) == REPAIRED
    stuck = Suspect(1, 0.0, stage=REPAIRING)
    verdicts = [confirm.judge(stuck, reading(1, 2), float(i), 2.0) for i in range(REPAIR_READS)]
    assert verdicts[-1] == UNREPAIRED and set(verdicts[:-1]) == {WAIT}


def test_settle_is_twice_the_lag_and_never_below_the_floor() -> None:
    assert confirm.settle_seconds(None) == confirm.SETTLE_FLOOR
    assert confirm.settle_seconds(100.0) == confirm.SETTLE_FLOOR
    assert confirm.settle_seconds(4000.0) == 8.0


def test_durations() -> None:
    assert [parse_duration(t) for t in ("30s", "15m", "24h", "7d", "90", "1.5h")] == [
        30,
        900,
        86400,
        604800,
        90,
        5400,
    ]
    for bad in ("", "0s", "10 minutes", "-5m", "h"):
        with pytest.raises(InvalidInputError, match="duration above 0"):
            parse_duration(bad, "every")


def test_a_pipelines_file_verify_table() -> None:
    text = """
[[pipeline]]
name = "orders"
primary = "us-east-1/orders"
replica = "eu-west-1/orders"
verify = { every = "6h", rate = "200", repair = false, ignore_attributes = ["aws:rep:x"] }

[[pipeline]]
name = "users"
primary = "us-east-1/users"
replica = "eu-west-1/users"
"""
    orders, users = parse(text, "fleet.toml").pipelines
    assert orders.verify.every == 6 * 3600 and orders.verify.rate.value == 200
    assert orders.verify.repairs(True) is False and orders.verify.ignore == ("aws:rep:x",)
    assert users.verify == VerifySettings() and users.verify.repairs(True) is True
    assert users.verify.every == 86400 and str(users.verify.rate) == "5%"


def test_a_bad_verify_table_names_its_line() -> None:
    text = """
[[pipeline]]
name = "orders"
primary = "us-east-1/orders"
replica = "eu-west-1/orders"
verify = { every = "often", colour = 1 }
"""
    with pytest.raises(ConfigurationError) as caught:
        parse(text, "fleet.toml")
    assert str(caught.value).startswith("fleet.toml:6: pipeline 'orders': verify: unknown verify")
    text = text.replace(", colour = 1", "")
    with pytest.raises(ConfigurationError, match=r"fleet\.toml:6: .*every must be a duration"):
        parse(text, "fleet.toml")
