"""The whole pipeline on this machine: moto as the local DynamoDB, a Redis, a worker, the
producer. Writes a few hundred changes to the primary and shows the replica catching up.

Run it with ``bash scripts/demo.sh`` (or ``make demo``); everything it starts is stopped at the end.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from rich.console import Console  # noqa: E402

from tasks.coord import stats  # noqa: E402
from tests.support import servers  # noqa: E402
from tests.support.tables import client, create_table, normalized_table  # noqa: E402
from tests.support.workload import apply_mixed  # noqa: E402

CHANGES = 400
console = Console(width=120)


def main() -> int:
    workdir = ROOT / ".tmp" / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    started: list[object] = []
    try:
        moto = servers.start_moto()
        started.append(moto)
        store = servers.start_redis(workdir=workdir)
        started.append(store)
        url = f"redis://127.0.0.1:{store.port}/0"
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo",
            "AWS_REGION": "us-east-1",
            "CELERY_BROKER_URL": url,
            "CELERY_RESULT_BACKEND": url,
            "REPLICATOR_REDIS_URL": url,
            "PYTHONUNBUFFERED": "1",
        }
        console.print(f"[bold]local DynamoDB[/] (moto) at {moto.url}, [bold]Redis[/] at {url}")
        create_table(
            moto.url, "demo-primary", ("id", "S"), ("seq", "N"), stream="NEW_AND_OLD_IMAGES"
        )
        create_table(moto.url, "demo-replica", ("id", "S"), ("seq", "N"))
        primary, replica = f"{moto.url}/demo-primary", f"{moto.url}/demo-replica"

        worker = servers.start_worker(env, concurrency=2, log_dir=workdir, name="demo")
        started.append(worker)
        producer = servers.start_command(
            [sys.executable, "-m", "producer", "--primary", primary, "--replica", replica],
            env,
            workdir,
            "producer",
        )
        started.append(producer)
        console.print(f"worker and producer running (logs in {workdir})")

        writer = threading.Thread(
            target=apply_mixed,
            args=(client(moto.url), "demo-primary", "composite", CHANGES, 150, 42),
            daemon=True,
        )
        began = time.monotonic()
        writer.start()
        console.print(f"writing {CHANGES} puts, updates and deletes to {primary} ...")
        agree = _watch(moto.url, redis.Redis.from_url(url), replica, writer, began)
        producer.terminate()
        return 0 if agree else 1
    finally:
        for thing in reversed(started):
            getattr(thing, "stop", getattr(thing, "kill", lambda: None))()
        console.print("stopped everything the demo started")


def _watch(
    moto_url: str, store: redis.Redis, replica: str, writer: threading.Thread, began: float
) -> bool:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(1)
        left = normalized_table(moto_url, "demo-primary")
        right = normalized_table(moto_url, "demo-replica")
        lags = sorted(stats.lag_samples(store, replica))
        differ = sum(1 for k in left.keys() | right.keys() if left.get(k) != right.get(k))
        console.print(
            f"t={time.monotonic() - began:5.1f}s  primary={len(left):4d} items  "
            f"replica={len(right):4d} items  differing={differ:4d}  "
            f"lag p50={stats.quantile(lags, 0.5)} ms p99={stats.quantile(lags, 0.99)} ms"
        )
        if not writer.is_alive() and differ == 0:
            console.print(f"[green]✔ the replica equals the primary ({len(left)} items)[/]")
            return True
    console.print("[red]✘ the replica did not catch up in time[/]")
    return False


if __name__ == "__main__":
    sys.exit(main())
