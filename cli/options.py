"""Options every command shares, each with its environment variable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from tasks.core import config, logs


def _apply(options: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    def decorator(func: Any) -> Any:
        for option in reversed(options):
            func = option(func)
        return func

    return decorator


def common_options(func: Any) -> Any:
    """--log-level, --redis-url and per-side credentials (profile / role to assume)."""
    options = [
        click.option(
            "--log-level",
            type=click.Choice(logs.LEVELS),
            default="info",
            envvar="REPLICATOR_LOG_LEVEL",
            show_default=True,
            help="Log level.",
        ),
        click.option(
            "--redis-url",
            envvar="REPLICATOR_REDIS_URL",
            help="Redis for coordination (default: CELERY_BROKER_URL).",
        ),
    ]
    for side in ("primary", "replica"):
        options += [
            click.option(
                f"--{side}-profile",
                envvar=f"REPLICATOR_{side.upper()}_PROFILE",
                help=f"AWS profile for the {side} side.",
            ),
            click.option(
                f"--{side}-role-arn",
                envvar=f"REPLICATOR_{side.upper()}_ROLE_ARN",
                help=f"IAM role to assume for the {side} side.",
            ),
        ]
    return _apply(options)(func)


def setup(params: dict[str, Any]) -> config.Settings:
    """Configure logging and the process settings from the shared options (flags win)."""
    logs.configure(params.pop("log_level", "info") or "info")
    base = config.settings()
    creds = dict(base.credentials)
    for side in ("primary", "replica"):
        profile = params.pop(f"{side}_profile", None)
        role = params.pop(f"{side}_role_arn", None)
        if profile or role:
            current = base.side(side)
            creds[side] = config.SideCredentials(
                profile=profile or current.profile,
                role_arn=role or current.role_arn,
                external_id=current.external_id,
            )
    merged = base.with_overrides(redis_url=params.pop("redis_url", None), credentials=creds)
    config.install(merged)
    return merged


def _names(_: click.Context, __: click.Parameter, given: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name.strip() for text in given for name in text.split(",") if name.strip())


ignore_attribute_option = click.option(
    "--ignore-attributes",
    "--ignore-attribute",
    "ignore",
    multiple=True,
    metavar="A,B",
    callback=_names,
    help="Attributes that differ by design, left out of the comparison (comma-separated, "
    "repeatable): Global Tables' aws:rep:* attributes, attributes only the replica gets.",
)


def metrics_options(func: Any) -> Any:
    """--metrics-port and --metrics-address: where a long-running process serves Prometheus
    metrics (``tasks.metrics.serve``)."""
    options = [
        click.option(
            "--metrics-port",
            type=click.IntRange(0, 65535),
            default=0,
            envvar="REPLICATOR_METRICS_PORT",
            show_default=True,
            help="Serve Prometheus metrics on this port (0: off).",
        ),
        click.option(
            "--metrics-address",
            default="0.0.0.0",
            envvar="REPLICATOR_METRICS_ADDRESS",
            show_default=True,
            help="Address the metrics endpoint listens on.",
        ),
    ]
    return _apply(options)(func)


def config_option(meaning: str) -> Callable[[Any], Any]:
    """--config FILE (or REPLICATOR_CONFIG): a pipelines file; ``meaning``: what the command
    does with it (its help)."""
    return click.option(
        "--config", "config_path", envvar="REPLICATOR_CONFIG", type=click.Path(), help=meaning
    )
