"""The one place where botocore's exceptions are inspected and mapped to ours."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from tasks.coord import stats
from tasks.core.errors import (
    AccessDeniedError,
    ConfigurationError,
    ExpiredIteratorError,
    InvalidInputError,
    NotFoundError,
    PermanentError,
    ReplicatorError,
    TransientError,
    TrimmedDataError,
    UnavailableError,
)

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "LimitExceededException",
        "SlowDown",
        "TransactionInProgressException",
    }
)
NOT_FOUND_CODES = frozenset(
    {"ResourceNotFoundException", "NoSuchBucket", "NoSuchKey", "NotFound", "404"}
)
ACCESS_CODES = frozenset(
    {"AccessDeniedException", "AccessDenied", "UnrecognizedClientException", "InvalidAccessKeyId"}
)
_PERFORM = re.compile(r"perform: ([\w-]+:\w+)")


def error_code(exc: BaseException) -> str:
    """The service's error code of a ClientError, or '' for anything else."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def denied_action(exc: ClientError) -> str:
    """The IAM action a refusal names (AWS says "not authorized to perform: dynamodb:GetItem"),
    or else the operation refused."""
    found = _PERFORM.search(str(exc.response.get("Error", {}).get("Message", "")))
    return found.group(1) if found else exc.operation_name


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message


def is_access_denied(exc: ClientError) -> bool:
    """The service refused the caller (a missing permission, or credentials it does not know)."""
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return error_code(exc) in ACCESS_CODES or status == 403


def map_error(exc: Exception, what: str) -> ReplicatorError:
    """Translate a botocore exception raised while doing ``what`` into a project error."""
    if isinstance(exc, ReplicatorError):
        return exc
    if isinstance(exc, ClientError):
        return _map_client_error(exc, what)
    if isinstance(exc, EndpointConnectionError | BotoConnectionError):
        return UnavailableError(f"{what}: cannot reach the endpoint ({exc})")
    if isinstance(exc, ReadTimeoutError):
        return TransientError(f"{what}: the endpoint timed out ({exc})")
    if isinstance(exc, NoCredentialsError | NoRegionError):
        return ConfigurationError(f"{what}: {exc}")
    if isinstance(exc, ParamValidationError):
        return InvalidInputError(f"{what}: {exc}")
    if isinstance(exc, BotoCoreError):
        return TransientError(f"{what}: {exc}")
    raise exc


def _map_client_error(exc: ClientError, what: str) -> ReplicatorError:
    code = error_code(exc)
    message = exc.response.get("Error", {}).get("Message", "") or code
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in THROTTLING_CODES:
        return TransientError(f"{what}: throttled ({code})")
    if code == "ExpiredIteratorException":
        return ExpiredIteratorError(f"{what}: {message}")
    if code == "TrimmedDataAccessException":
        return TrimmedDataError(f"{what}: {message}")
    if code in NOT_FOUND_CODES or status == 404:
        return NotFoundError(f"{what}: not found ({message})")
    if code in ACCESS_CODES or status == 403:
        action = denied_action(exc)
        stats.note_access_denied(action)
        return AccessDeniedError(f"{what}: access denied: {action} ({_first_line(message)})")
    if status >= 500 or code in {"InternalServerError", "ServiceUnavailable", "InternalFailure"}:
        return TransientError(f"{what}: service error {status} {code}")
    if code == "ValidationException" or status == 400:
        return PermanentError(f"{what}: {code}: {message}")
    return TransientError(f"{what}: {code or status}: {message}")


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Run a block of boto3 calls, turning botocore's exceptions into project errors."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise map_error(exc, what) from exc
