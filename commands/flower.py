"""`replicator flower`: start Flower (``celery -A worker flower``) only with credentials.

Flower shows every task's arguments and results and its HTTP API can revoke tasks and shut
workers down, so it is never exposed without authentication: basic auth from
``FLOWER_BASIC_AUTH`` (``user:password``, comma-separated for several users) or Flower's own
OAuth settings (``FLOWER_AUTH`` with ``FLOWER_OAUTH2_*``). ``FLOWER_UNAUTHENTICATED_API`` is
always switched off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

import click

from cli.exits import handle_errors
from cli.options import common_options, setup
from tasks.core.errors import ConfigurationError

HOW_TO = (
    "set FLOWER_BASIC_AUTH=user:password in the environment (in .env for docker compose; "
    "several users: user1:pass1,user2:pass2), or FLOWER_AUTH with Flower's FLOWER_OAUTH2_* "
    "settings"
)

# The tasks page shows each segment's tables and number (arguments) and its counts (result).
TASKS_COLUMNS = "name,uuid,state,args,kwargs,result,received,runtime,worker"


def check_credentials(env: Mapping[str, str]) -> None:
    """ConfigurationError (exit 2) unless Flower would ask every visitor for credentials."""
    if env.get("FLOWER_AUTH", "").strip():
        return
    raw = env.get("FLOWER_BASIC_AUTH", "").strip()
    if not raw:
        raise ConfigurationError(
            f"Flower needs credentials and none are configured: {HOW_TO}. Refusing to start "
            "Flower (and its HTTP API) without authentication"
        )
    for pair in raw.split(","):
        user, _, password = pair.partition(":")
        if not user.strip() or not password:
            raise ConfigurationError(
                "FLOWER_BASIC_AUTH must be user:password (comma-separated for several users); "
                "an entry has an empty user name or password"
            )


@click.command(context_settings={"ignore_unknown_options": True})
@common_options
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=5555,
    envvar="FLOWER_PORT",
    show_default=True,
    help="Port Flower listens on.",
)
@click.option(
    "--address",
    default="0.0.0.0",
    envvar="FLOWER_ADDRESS",
    show_default=True,
    help="Address Flower listens on.",
)
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
@handle_errors
def flower(port: int, address: str, flower_args: tuple[str, ...], **params: Any) -> None:
    """Run Flower with authentication; extra arguments go to `celery flower`."""
    level = params.get("log_level") or "info"
    environ = setup(params).environ
    check_credentials(environ)
    env = {k: v for k, v in environ.items() if k != "FLOWER_UNAUTHENTICATED_API"}
    env.setdefault("FLOWER_TASKS_COLUMNS", TASKS_COLUMNS)
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker",
        "flower",
        f"--port={port}",
        f"--address={address}",
        f"--logging={level}",
        *flower_args,
    ]
    sys.stdout.flush()
    os.execvpe(sys.executable, args, env)
