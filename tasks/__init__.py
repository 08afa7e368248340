"""Shared domain code, and the Celery task declarations on top of it.

Packages by concern, each importing only from those listed after it:

* ``replication``, ``diff``, ``backup``: the features (sync keys to a target; compare and
  repair a scan segment; dumps, incremental history, snapshots, restore, point in time);
* ``jobs``: bulk jobs split into scan segments (model, ``run_segment``, Redis and memory stores);
* ``coord``: coordination state in Redis (connection, stale-write guard, pending marks, dead
  letters, stats, rate limit);
* ``aws``: boto3 clients per side, botocore error mapping, DynamoDB tables, S3 objects;
* ``metrics``: the Prometheus endpoint and the workers' collector;
* ``core``: settings, errors, keys, locations, typed JSON, times, logs, backoff.

On top: ``names`` (task and queue names), ``kinds`` (the registry of bulk job kinds), and the
only modules that need a broker, the task declarations ``per_key`` (replication queue) and
``segments`` (bulk queue). CONTRIBUTING.md has the picture.
"""
