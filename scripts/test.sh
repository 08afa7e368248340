#!/usr/bin/env bash
# Install what the tests need, then run them all (Redis, moto and the workers are started by
# the test fixtures on free ports). The suite runs in REPLICATOR_TEST_PROCESSES pytest-xdist
# processes (4 by default: most of a test's time is spent waiting on its own servers and
# workers, so even two cores keep four busy); 0 runs it in this process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n "${REPLICATOR_TEST_PROCESSES:-4}" "$@"
