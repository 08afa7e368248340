#!/usr/bin/env bash
# Run the whole pipeline locally: moto (DynamoDB + S3), Redis, a worker, the producer.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_NODE=0 WITH_APT=0 bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
