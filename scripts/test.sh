#!/usr/bin/env bash
# Install what the tests need, then run them all (Redis, moto and the workers are started by
# the test fixtures on free ports).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
