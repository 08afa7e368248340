"""boto3 clients whose calls are answered by a canned response, without a network: for checking
that what our botocore hooks send and parse is what botocore itself would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, *_: Any, **__: Any) -> Iterator[bytes]:
        yield self.body


def client(service: str) -> Any:
    """A client of ``service`` pointed at nowhere (every call must be answered)."""
    return boto3.client(
        service,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        endpoint_url="http://127.0.0.1:9",
    )


def answer(
    made: Any,
    operation: str,
    reply: dict[str, Any],
    status: int = 200,
    sent: dict[str, Any] | None = None,
) -> None:
    """Every ``operation`` call of ``made`` gets ``reply`` as its JSON body with ``status``; the
    JSON body of each request goes into ``sent``."""
    prefix = made.meta.service_model.service_id.hyphenize()
    body = json.dumps(reply).encode()

    def respond(request: Any, **_: Any) -> AWSResponse:
        if sent is not None:
            sent.update(json.loads(request.body))
        return AWSResponse(request.url, status, HTTPHeaders(), _Raw(body))

    made.meta.events.register(f"before-send.{prefix}.{operation}", respond)
