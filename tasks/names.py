"""Task and queue names: the one place they are spelled (Flower shows tasks by these names).

Latency-critical per-key work goes to the ``replication`` queue; scans and dumps go to ``bulk``.
"""

from __future__ import annotations

REPLICATION_QUEUE = "replication"
BULK_QUEUE = "bulk"
QUEUES = (REPLICATION_QUEUE, BULK_QUEUE)

# per-key tasks (tasks.per_key)
REPLICATE = "replicate"
BACKUP_RECORD = "backup-record"
# bulk segment tasks (tasks.segments)
DIFF_SEGMENT = "diff-segment"
BACKUP_SEGMENT = "backup-segment"
BACKFILL_SEGMENT = "backfill-segment"
RESTORE_SEGMENT = "restore-segment"

PER_KEY_TASKS = (REPLICATE, BACKUP_RECORD)
SEGMENT_TASKS = (DIFF_SEGMENT, BACKUP_SEGMENT, BACKFILL_SEGMENT, RESTORE_SEGMENT)

ROUTES = {
    **{name: {"queue": REPLICATION_QUEUE} for name in PER_KEY_TASKS},
    **{name: {"queue": BULK_QUEUE} for name in SEGMENT_TASKS},
}
