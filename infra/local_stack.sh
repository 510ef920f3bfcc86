#!/usr/bin/env bash
# Start or stop a local stack on 127.0.0.1 for a workspace: an MLflow tracking server over the
# workspace's sqlite store, a Prefect server, and a Ray head node. It stops exactly the
# processes it started (pids kept in WORKSPACE/.stack), never a global `ray stop`.
#
#   infra/local_stack.sh start [WORKSPACE]   # then export the variables it prints
#   infra/local_stack.sh stop  [WORKSPACE]
#
# Ports: MLFLOW_PORT (5000), PREFECT_PORT (4200), RAY_PORT (6380). Needs the project's venv.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${VENV_BIN:-$here/.venv/bin}"
action="${1:-}"
workspace="$(mkdir -p "${2:-${CLPIPE_WORKSPACE:-$here/workspace}}" && cd "${2:-${CLPIPE_WORKSPACE:-$here/workspace}}" && pwd)"
state="$workspace/.stack"
mlflow_port="${MLFLOW_PORT:-5000}"
prefect_port="${PREFECT_PORT:-4200}"
ray_port="${RAY_PORT:-6380}"

wait_for() {  # url, seconds
  for _ in $(seq "$2"); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "timed out waiting for $1 (logs in $state)" >&2
  return 1
}

start() {
  mkdir -p "$state" "$workspace/mlartifacts"
  "$bin/mlflow" server --backend-store-uri "sqlite:///$workspace/mlflow.db" \
    --artifacts-destination "$workspace/mlartifacts" --host 127.0.0.1 --port "$mlflow_port" \
    >"$state/mlflow.log" 2>&1 &
  echo $! >"$state/mlflow.pid"

  PREFECT_HOME="$workspace/.prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 \
    "$bin/prefect" server start --host 127.0.0.1 --port "$prefect_port" >"$state/prefect.log" 2>&1 &
  echo $! >"$state/prefect.pid"

  if [[ "${WITH_RAY:-1}" == 1 ]]; then
    # Ray 2.60's token authentication: the head and every driver need RAY_AUTH_MODE=token.
    RAY_AUTH_MODE=token RAY_ADDRESS= "$bin/ray" start --head --block --node-ip-address=127.0.0.1 --port="$ray_port" \
      --dashboard-host=127.0.0.1 --temp-dir="/tmp/ray-clpipe-$ray_port" >"$state/ray.log" 2>&1 &
    echo $! >"$state/ray.pid"
  fi

  wait_for "http://127.0.0.1:$mlflow_port/health" 120
  wait_for "http://127.0.0.1:$prefect_port/api/health" 120
  cat <<ENV
# local stack up; point clpipe at it with:
export MLFLOW_TRACKING_URI=http://127.0.0.1:$mlflow_port
export PREFECT_API_URL=http://127.0.0.1:$prefect_port/api
ENV
  [[ "${WITH_RAY:-1}" == 1 ]] && echo "export RAY_AUTH_MODE=token RAY_ADDRESS=127.0.0.1:$ray_port"
  return 0
}

stop() {
  for service in ray prefect mlflow; do
    pidfile="$state/$service.pid"
    [[ -f "$pidfile" ]] || continue
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
  echo "local stack stopped"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop [WORKSPACE]" >&2; exit 2 ;;
esac
