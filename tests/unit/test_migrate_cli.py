"""``replicator migrate``'s usage: the location forms, in --help and in every location error."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from commands.migrate import migrate

FORMS = ("REGION/TABLE", "HOST:PORT/TABLE", "http(s)://HOST[:PORT]/TABLE", "local/TABLE")


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"]])
def test_help_lists_every_location_form(args: list[str]) -> None:
    result = CliRunner().invoke(migrate, args)

    assert result.exit_code == 0, result.output
    assert all(form in result.output for form in FORMS), result.output


def test_a_bad_location_names_every_form_in_one_line() -> None:
    result = CliRunner().invoke(migrate, ["orders", "us-east-1/orders_v2"])

    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: invalid table location 'orders': ")
    assert all(form in line for form in FORMS), line
