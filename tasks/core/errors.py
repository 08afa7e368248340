"""The project's exceptions.

Every error the project raises on purpose derives from ``ReplicatorError``::

    ReplicatorError
    ├── ConfigurationError          settings or flags that cannot work together
    │   └── MetricsPortError        (tasks.metrics.serve) the metrics port cannot be bound
    ├── InvalidInputError           a location, key, record or file that is malformed
    │   ├── SchemaMismatchError     primary and replica (or backup and target) keys differ
    │   └── MalformedRecordError    (producer.records) a stream record that cannot be used
    ├── NotFoundError               a table, stream, bucket or object that does not exist
    ├── PermanentError              the service refused the request and will refuse it again
    └── TransientError              worth retrying: throttling, 5xx, timeouts
        ├── UnavailableError        an endpoint or Redis that cannot be reached at all
        └── StreamPositionError     a shard iterator that cannot be used any more
            ├── ExpiredIteratorError  older than the service keeps iterators
            └── TrimmedDataError      the checkpoint is older than the stream's retention

botocore's error codes are translated in exactly one place, ``tasks.aws.errors``.
Commands turn these into one line on stderr and an exit code (``cli.exits``).
"""

from __future__ import annotations


class ReplicatorError(Exception):
    """Base class of every error the project raises on purpose."""


class ConfigurationError(ReplicatorError):
    """Settings or flags that are wrong or cannot work together."""


class InvalidInputError(ReplicatorError):
    """A location, key, stream record or backup line that is malformed."""


class SchemaMismatchError(InvalidInputError):
    """Two tables (or a backup and a table) whose key schemas differ."""


class NotFoundError(ReplicatorError):
    """A table, stream, bucket or object that does not exist."""


class PermanentError(ReplicatorError):
    """The service rejected the request and would reject it again (validation, access)."""


class AccessDeniedError(PermanentError):
    """The service refused the caller: a permission is missing (or the credentials unknown)."""


class TransientError(ReplicatorError):
    """A failure that may go away when retried (throttling, 5xx, timeouts)."""


class UnavailableError(TransientError):
    """An endpoint or Redis that cannot be reached at all."""


class StreamPositionError(TransientError):
    """A shard iterator that cannot be used any more; re-acquire it from the checkpoint."""


class ExpiredIteratorError(StreamPositionError):
    """The shard iterator is older than the service keeps iterators (15 minutes on AWS)."""


class TrimmedDataError(StreamPositionError):
    """The checkpoint is older than the stream's retention: the records in between are gone."""
