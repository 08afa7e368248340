"""Celery tasks on the ``replication`` queue: make a target match the primary for a batch of keys.

``replicate`` writes to the replica table, ``backup-record`` to the incremental S3 backup. Both
only declare the task; the work is ``tasks.replication.batches.run_message``.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from tasks import names
from tasks.backup.incremental import S3Sink
from tasks.core.config import settings
from tasks.core.locations import REPLICA, Table, parse_s3
from tasks.core.transform import TransformSpec
from tasks.messages import KeysMessage
from tasks.replication.batches import TASK_OPTIONS, newest, run_message
from tasks.replication.sync import ReplicaSink


@shared_task(name=names.REPLICATE, **TASK_OPTIONS)
def replicate(
    self: Any,
    primary: str,
    replica: str,
    keys: list[dict[str, Any]],
    created: list[float] | None = None,
    session: str | None = None,
    attempt: int = 0,
    transform: dict[str, Any] | None = None,
) -> dict[str, int]:
    """Replicate ``keys`` (typed wire JSON) from ``primary`` to ``replica``, through the
    ``transform`` (``tasks.core.transform.TransformSpec.to_params``) when given."""

    def sink() -> tuple[Table, ReplicaSink]:
        cfg = settings()
        shape = TransformSpec.from_params(transform)
        return cfg.table(primary), ReplicaSink(cfg.table(replica, REPLICA), shape)

    message = KeysMessage(
        names.REPLICATE, primary, replica, keys, created, session, None, transform, attempt
    )
    return run_message(self, message, sink)


@shared_task(name=names.BACKUP_RECORD, **TASK_OPTIONS)
def backup_record(
    self: Any,
    primary: str,
    target: str,
    keys: list[dict[str, Any]],
    created: list[float] | None = None,
    session: str | None = None,
    attempt: int = 0,
    changed: list[float] | None = None,
) -> dict[str, int]:
    """Back up ``keys`` (typed wire JSON) of ``primary`` to ``target`` (s3://bucket/prefix);
    ``changed``: the creation time of each key's newest change (its version records it)."""
    message = KeysMessage(
        names.BACKUP_RECORD, primary, target, keys, created, session, changed, None, attempt
    )

    def sink() -> tuple[Table, S3Sink]:
        source = settings().table(primary)
        return source, S3Sink(parse_s3(target), source.name, changed=newest(keys, changed))

    return run_message(self, message, sink)
