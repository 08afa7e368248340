"""`replicator iam-policy`: the least IAM policies each process needs, as JSON.

    replicator iam-policy --primary LOC [--replica LOC] [--backup S3URL] [--kinesis-stream NAME]
                          [--primary-account ID] [--replica-account ID] [--role NAME]
    replicator iam-policy --config FILE [--primary-account ID] [--replica-account ID] [--role NAME]

Prints one JSON object: each role's identity policy (``producer``, ``worker`` and its sides
``worker-primary`` / ``worker-replica`` / ``worker-s3``, ``migrate``, ``backup``, ``restore``,
``verify``) scoped to the pipelines' tables, indexes, streams, exports and bucket; where the
primary's account differs from the replica's, also the primary account's trust policy for the
replica account and the primary table's resource policy. ``--role NAME`` prints that one
document alone. Without the accounts, ARNs match any account (``*``). Nothing is called.
"""

from __future__ import annotations

import json
from typing import Any

import click

from cli.exits import handle_errors
from cli.options import common_options, config_option, setup
from producer import plans
from tasks.aws import iam
from tasks.core import pipelines as pipelines_file
from tasks.core.config import Settings
from tasks.core.errors import InvalidInputError
from tasks.core.locations import parse_s3


@click.command("iam-policy")
@click.option("--primary", metavar="LOC", help="The primary table (region/table, ...).")
@click.option("--replica", metavar="LOC", help="The replica table.")
@click.option("--backup", metavar="S3URL", help="The backup bucket and prefix (s3://b/p).")
@click.option("--kinesis-stream", metavar="NAME", help="The Kinesis stream the primary feeds.")
@click.option("--primary-account", metavar="ID", default=iam.ANY_ACCOUNT, show_default=True)
@click.option("--replica-account", metavar="ID", default=iam.ANY_ACCOUNT, show_default=True)
@click.option("--role", metavar="NAME", help="Print this document only (a name of the output).")
@config_option("Every pipeline of this pipelines file instead of --primary/--replica/...")
@common_options
@handle_errors
def iam_policy(
    primary: str | None,
    replica: str | None,
    backup: str | None,
    kinesis_stream: str | None,
    primary_account: str,
    replica_account: str,
    role: str | None,
    config_path: str | None,
    **params: Any,
) -> None:
    """The least IAM policies each process needs, for one pipeline or a pipelines file."""
    cfg = setup(params)
    accounts = {"primary_account": primary_account, "replica_account": replica_account}
    if config_path:
        if primary or replica or backup or kinesis_stream:
            raise InvalidInputError("give --config FILE or --primary/--replica/..., not both")
        scopes = [
            _scope(cfg, p.primary, p.replica, p.backup, p.kinesis_stream, accounts)
            for p in plans.resolve(pipelines_file.load(config_path))
        ]
    elif primary:
        scopes = [_scope(cfg, primary, replica, backup, kinesis_stream, accounts)]
    else:
        raise InvalidInputError("give --primary LOC (and --replica, --backup, ...) or --config")
    documents = iam.documents(scopes)
    if role is None:
        click.echo(json.dumps(documents, indent=2))
        return
    if role not in documents:
        raise InvalidInputError(f"--role {role!r}: one of {', '.join(documents)}")
    click.echo(json.dumps(documents[role], indent=2))


def _scope(
    cfg: Settings,
    primary: str,
    replica: str | None,
    backup: str | None,
    kinesis_stream: str | None,
    accounts: dict[str, str],
) -> iam.Scope:
    return iam.Scope(
        primary=cfg.location(primary),
        replica=cfg.location(replica) if replica else None,
        backup=parse_s3(backup) if backup else None,
        kinesis_stream=kinesis_stream,
        **accounts,
    )
