#!/usr/bin/env bash
# Start the machine's RabbitMQ node if it is not running, and enable the management plugin
# (Flower reads the queues from its API). Idempotent; never stops or restarts a running node.
set -euo pipefail

if ! rabbitmqctl -q status >/dev/null 2>&1; then
  rabbitmq-server -detached >/dev/null 2>&1 || true
fi
rabbitmqctl -q await_startup --timeout 120 >/dev/null
if ! rabbitmq-plugins -q is_enabled rabbitmq_management >/dev/null 2>&1; then
  rabbitmq-plugins -q enable rabbitmq_management >/dev/null
fi
