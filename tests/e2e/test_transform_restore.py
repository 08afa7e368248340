"""restore-table through a transform writes what replication would have: t(backup item), and a
key whose item the transform leaves out is deleted from the target."""

from __future__ import annotations

from tests.e2e.test_transform_diff import SHAPE, _tables
from tests.integration.test_backup_incremental import make_bucket, run
from tests.support.tables import client, scan_all


def test_a_restore_through_the_transform_equals_a_transformed_replica(
    env: dict[str, str], moto_url: str
) -> None:
    _tables(moto_url)
    make_bucket(moto_url, "dumps", versioned=False)
    dumped = run(env, "backup-table", f"{moto_url}/primary", "s3://dumps/d", "--jobid", "j")
    # an item the filter leaves out, already in the target: the restore deletes it
    client(moto_url).put_item(TableName="replica", Item={"id": {"S": "k00"}, "kind": {"S": "x"}})

    restored = run(env, "restore-table", "s3://dumps/d/j", f"{moto_url}/replica", *SHAPE)
    agree = run(env, "diff-tables", f"{moto_url}/primary", f"{moto_url}/replica", *SHAPE)

    assert dumped.returncode == 0, dumped.stderr
    assert restored.returncode == 0, restored.stderr
    replica = scan_all(moto_url, "replica")
    assert len(replica) == 27 and '{"id":{"S":"k00"}}' not in replica
    assert all("ssn" not in item and "user_id" in item for item in replica.values())
    assert agree.returncode == 0, agree.stdout
