#!/bin/sh
# The image's entry point: start one role of the stack.
#   worker | producer | verifier | flower | demo-tables | any other command (run as given)
# Settings come from the environment (docker compose reads them from .env). A missing one is
# reported once, naming it and saying how to set it, and the container exits 78 (EX_CONFIG).
set -eu

fail() {
  echo "error: $1" >&2
  exit 78
}

need() {  # need NAME "how to set it"
  eval "value=\${$1:-}"
  [ -n "$value" ] || fail "$1 is not set: $2"
}

role="${1:-worker}"
[ $# -gt 0 ] && shift

case "$role" in
  worker)
    need CELERY_BROKER_URL "set it to the broker's URL (amqp://... or redis://...) in .env"
    # -E: task events on, so Flower sees every task. Both queues unless WORKER_QUEUES says.
    exec celery -A worker worker -E --without-mingle \
      --queues "${WORKER_QUEUES:-replication,bulk}" \
      --concurrency "${WORKER_CONCURRENCY:-4}" \
      --loglevel "${REPLICATOR_LOG_LEVEL:-info}" "$@"
    ;;
  producer)
    need CELERY_BROKER_URL "set it to the broker's URL (amqp://... or redis://...) in .env"
    if [ -n "${REPLICATOR_CONFIG:-}" ]; then
      # every pipeline of the mounted pipelines file (docker-compose.fleet.yml)
      [ -r "$REPLICATOR_CONFIG" ] || fail "the pipelines file $REPLICATOR_CONFIG cannot be read: set PIPELINES_FILE=./pipelines.toml in .env"
      exec python -m producer --config "$REPLICATOR_CONFIG" "$@"
    fi
    need PRIMARY_TABLE "set PRIMARY_TABLE=REGION/TABLE (or http://HOST:PORT/TABLE) in .env, or PIPELINES_FILE with docker-compose.fleet.yml"
    if [ -z "${REPLICA_TABLE:-}" ] && [ -z "${BACKUP_URL:-}" ]; then
      fail "set REPLICA_TABLE=REGION/TABLE and/or BACKUP_URL=s3://BUCKET/PREFIX in .env"
    fi
    set -- --primary "$PRIMARY_TABLE" "$@"
    if [ -n "${REPLICA_TABLE:-}" ]; then set -- "$@" --replica "$REPLICA_TABLE"; fi
    if [ -n "${BACKUP_URL:-}" ]; then set -- "$@" --backup "$BACKUP_URL"; fi
    exec python -m producer "$@"
    ;;
  verifier)
    need CELERY_BROKER_URL "set it to the broker's URL (amqp://... or redis://...) in .env"
    if [ -n "${REPLICATOR_CONFIG:-}" ]; then
      # every pipeline of the mounted pipelines file with a replica, each with its verify table
      [ -r "$REPLICATOR_CONFIG" ] || fail "the pipelines file $REPLICATOR_CONFIG cannot be read: set PIPELINES_FILE=./pipelines.toml in .env"
      exec replicator verify --config "$REPLICATOR_CONFIG" "$@"
    fi
    need PRIMARY_TABLE "set PRIMARY_TABLE=REGION/TABLE (or http://HOST:PORT/TABLE) in .env, or PIPELINES_FILE with docker-compose.fleet.yml"
    need REPLICA_TABLE "set REPLICA_TABLE=REGION/TABLE in .env: the verifier compares it with PRIMARY_TABLE"
    exec replicator verify "$PRIMARY_TABLE" "$REPLICA_TABLE" \
      --every "${VERIFY_EVERY:-24h}" --rate "${VERIFY_RATE:-5%}" "$@"
    ;;
  flower)
    # replicator flower refuses to start without FLOWER_BASIC_AUTH (or FLOWER_AUTH).
    exec replicator flower "$@"
    ;;
  demo-tables)
    need PRIMARY_TABLE "set PRIMARY_TABLE=http://moto:5000/TABLE in .env"
    exec python /app/docker/demo_tables.py "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
