"""The one retry policy, and the one way a task is sent again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

from tasks import resend
from tasks.core import config
from tasks.core.config import Settings, from_env
from tasks.core.errors import ConfigurationError
from tasks.core.retry import RetryPolicy, botocore_backoff_bound, policy, segment_give_up_bound


@pytest.fixture()
def cfg() -> Iterator[Settings]:
    """Settings installed for the process, as a command installs them."""
    value = Settings(task_max_attempts=3, task_backoff_base=0.5, task_backoff_cap=4.0)
    config.install(value)
    yield value
    config.reset()


def test_the_policy_comes_from_the_settings_and_is_validated() -> None:
    cfg = from_env({"REPLICATOR_SEGMENT_RETRY_WINDOW": "30", "REPLICATOR_TASK_MAX_ATTEMPTS": "4"})
    assert policy(cfg) == RetryPolicy(attempts=4, base=1.0, cap=60.0, window=30.0)
    assert policy(Settings()).window == 60.0
    with pytest.raises(ConfigurationError, match="REPLICATOR_SEGMENT_RETRY_WINDOW"):
        from_env({"REPLICATOR_SEGMENT_RETRY_WINDOW": "soon"})
    with pytest.raises(ConfigurationError, match="segment_retry_window must be positive"):
        from_env({"REPLICATOR_SEGMENT_RETRY_WINDOW": "0"})
    with pytest.raises(ConfigurationError, match="task_backoff_base must not exceed"):
        from_env({"REPLICATOR_TASK_BACKOFF_BASE": "90"})


def test_countdowns_grow_capped_and_jittered_and_keys_run_out() -> None:
    rules = policy(Settings(task_max_attempts=3, task_backoff_base=0.5, task_backoff_cap=4.0))
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (9, 4.0)]:
        countdowns = [rules.countdown(attempt) for _ in range(200)]
        assert all(0 <= c <= ceiling for c in countdowns)
        assert max(countdowns) > ceiling / 2 and len(set(countdowns)) > 100
    assert [rules.key_exhausted(a) for a in range(4)] == [False, False, True, True]
    assert rules.segment_deadline(1000.0) == 1000.0 + 60.0


def test_the_documented_bound_counts_botocores_retries() -> None:
    # 8 retries, throttled: 1 + 2 + 4 + 8 + 16 + 20 + 20 + 20 seconds at most
    assert botocore_backoff_bound(8) == 91.0
    # the window, the shortest countdown (the last retry may start that long after the window)
    assert segment_give_up_bound(Settings()) == 60.0 + 1.0 + 91.0
    assert segment_give_up_bound(Settings(aws_max_attempts=1, segment_retry_window=10)) == 12.0


class FakeApp:
    def __init__(self, error: Exception | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.error = error

    def send_task(self, name: str, **options: Any) -> None:
        if self.error:
            raise self.error
        self.sent.append({"name": name, **options})


class FakeTask:
    name = "diff-segment"

    def __init__(self, app: FakeApp) -> None:
        self.app = app


@pytest.fixture()
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    names: list[str] = []
    monkeypatch.setattr(resend, "connection", lambda: None)
    monkeypatch.setattr(resend.stats, "add_task_retry", lambda _, name: names.append(name))
    return names


def test_send_again_sends_the_next_attempt_after_the_countdown(
    cfg: Settings, counted: list[str]
) -> None:
    app = FakeApp()
    countdown = resend.send_again(FakeTask(app), ("j", 1), {"x": 1}, 2, kwargsrepr="shown")

    assert countdown is not None and 1.0 <= countdown <= 2.0  # 0.5 * 2**2, at least 1 s
    assert app.sent == [
        {
            "name": "diff-segment",
            "args": ("j", 1),
            "kwargs": {"x": 1, "attempt": 3},
            "countdown": countdown,
            "kwargsrepr": "shown",
        }
    ]
    assert counted == ["diff-segment"]


def test_send_again_sends_nothing_past_the_deadline_and_the_last_one_at_it(
    cfg: Settings, counted: list[str]
) -> None:
    app = FakeApp()
    assert resend.send_again(FakeTask(app), (), {}, 0, deadline=time.time() - 0.01) is None
    assert app.sent == [] and counted == []
    last = resend.send_again(FakeTask(app), (), {}, 9, deadline=time.time() + 1.5)
    assert last is not None and 1.0 <= last <= 1.5  # the policy alone: up to 4 s
    assert [m["countdown"] for m in app.sent] == [last] and counted == ["diff-segment"]


def test_countdowns_are_at_least_one_second(cfg: Settings, counted: list[str]) -> None:
    """RabbitMQ's delayed delivery counts whole seconds: Celery refuses 0 < countdown < 1."""
    app = FakeApp()
    first = [resend.send_again(FakeTask(app), (), {}, 0) for _ in range(20)]  # policy: <= 0.5 s
    assert first == [1.0] * 20
    soon = resend.send_again(FakeTask(app), (), {}, 9, deadline=time.time() + 0.2)
    assert soon == 1.0


def test_a_re_send_that_cannot_be_published_requeues_the_message(
    cfg: Settings, counted: list[str]
) -> None:
    task = FakeTask(FakeApp(OperationalError("Error 111 connecting to 127.0.0.1:6379")))
    with pytest.raises(Reject) as rejected:
        resend.send_again(task, ("j", 0), {}, 0)
    assert rejected.value.requeue is True
    assert counted == []
