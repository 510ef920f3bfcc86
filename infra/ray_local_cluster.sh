#!/usr/bin/env bash
# Start or stop a Ray cluster of N nodes on this machine, all on 127.0.0.1: one head and N-1
# worker nodes, each its own raylet with its own CPUs and a custom resource `node_<i>: 1`, so that
# multi-node behaviour (STRICT_SPREAD placement, storage every node reaches, MLflow over HTTP)
# can be tried without a second host. It stops exactly the processes it started (pids kept in
# STATE_DIR), never a global `ray stop`.
#
#   infra/ray_local_cluster.sh start N [STATE_DIR]   # then export the RAY_ADDRESS it prints
#   infra/ray_local_cluster.sh stop    [STATE_DIR]
#
# Environment: RAY_PORT (GCS port, 6390), RAY_NODE_CPUS (logical CPUs per node, 2),
# RAY_DASHBOARD_PORT (8265), RAY_CLIENT_PORT (10001; keep it outside the worker port range
# 10002-19999), RAY_OBJECT_STORE_MEMORY (bytes per node; Ray's default when unset),
# RAY_TEMP_DIR (/tmp/ray-clpipe-$RAY_PORT; Unix socket paths must stay short), VENV_BIN.
# STATE_DIR defaults to $CLPIPE_WORKSPACE/.ray-cluster (./workspace/.ray-cluster).
#
# Token authentication: every node and every driver needs RAY_AUTH_MODE=token (a node that
# joins without it fails with InvalidAuthToken); the token is ~/.ray/auth_token or $RAY_AUTH_TOKEN.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${VENV_BIN:-$here/.venv/bin}"
action="${1:-}"
port="${RAY_PORT:-6390}"
cpus="${RAY_NODE_CPUS:-2}"
dashboard_port="${RAY_DASHBOARD_PORT:-8265}"
client_port="${RAY_CLIENT_PORT:-10001}"
temp_dir="${RAY_TEMP_DIR:-/tmp/ray-clpipe-$port}"
export RAY_AUTH_MODE=token
# A RAY_ADDRESS from the caller's shell must not redirect the nodes to another cluster.
unset RAY_ADDRESS

usage() {
  echo "usage: $0 start N [STATE_DIR] | stop [STATE_DIR]" >&2
  exit 2
}

state_dir() {  # the folder argument, else the workspace default
  local folder="${1:-${CLPIPE_WORKSPACE:-$here/workspace}/.ray-cluster}"
  mkdir -p "$folder" && cd "$folder" && pwd
}

node_flags() {  # index: the flags every node shares
  local flags=(--block --node-ip-address=127.0.0.1 --num-cpus="$cpus" --temp-dir="$temp_dir"
    --resources="{\"node_$1\": 1}" --dashboard-agent-listen-port=0 --disable-usage-stats)
  [[ -n "${RAY_OBJECT_STORE_MEMORY:-}" ]] && flags+=(--object-store-memory="$RAY_OBJECT_STORE_MEMORY")
  printf '%s\n' "${flags[@]}"
}

launch() {  # index, ray start arguments...: one node in its own process group, pid recorded
  local index="$1"
  shift
  # setsid: the node's raylet, GCS and workers share a process group that `stop` can end whole.
  setsid "$bin/ray" start "$@" >"$state/node-$index.log" 2>&1 &
  echo $! >"$state/node-$index.pid"
}

wait_for_nodes() {  # count, seconds: the GCS must report `count` live nodes
  "$bin/python" - "$1" "$2" "127.0.0.1:$port" <<'PY'
import socket, sys, time

wanted, budget, address = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + budget
host, port = address.split(":")
# ray.init waits forever when nothing listens: see the GCS port open first.
while True:
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(f"no GCS answers at {address}")
        time.sleep(1)

import ray

ray.init(address=address, log_to_driver=False, logging_level="ERROR")
alive = 0
while time.monotonic() < deadline:
    alive = sum(1 for node in ray.nodes() if node["Alive"])
    if alive >= wanted:
        sys.exit(0)
    time.sleep(1)
sys.exit(f"{alive} of {wanted} nodes alive at {address} after {budget:.0f} s")
PY
}

start() {  # count, state folder
  local count="$1" index
  [[ "$count" =~ ^[1-9][0-9]*$ ]] || usage
  state="$(state_dir "${2:-}")"
  if compgen -G "$state/node-*.pid" >/dev/null; then
    echo "a cluster is already recorded in $state; run: $0 stop $state" >&2
    exit 1
  fi
  mkdir -p "$temp_dir"
  mapfile -t head_flags < <(node_flags 0)
  launch 0 --head --port="$port" --dashboard-host=127.0.0.1 --dashboard-port="$dashboard_port" \
    --ray-client-server-port="$client_port" "${head_flags[@]}"
  for ((index = 1; index < count; index++)); do
    mapfile -t worker_flags < <(node_flags "$index")
    launch "$index" --address="127.0.0.1:$port" "${worker_flags[@]}"
  done
  echo "127.0.0.1:$port" >"$state/address"
  if ! wait_for_nodes "$count" "${RAY_START_TIMEOUT:-180}" >"$state/wait.log" 2>&1; then
    echo "the Ray cluster did not come up: $(tail -n 1 "$state/wait.log"); logs in $state" >&2
    stop_nodes
    exit 1
  fi
  cat <<ENV
# Ray cluster of $count nodes up (logs in $state); join it with:
export RAY_AUTH_MODE=token
export RAY_ADDRESS=127.0.0.1:$port
ENV
}

group_alive() {  # pid: does any process of the node's process group remain?
  kill -0 -- "-$1" 2>/dev/null || kill -0 "$1" 2>/dev/null
}

stop_nodes() {
  local pidfile pid pids=() running _
  # Worker nodes first, the head (node-0) last, so no worker reports a lost GCS.
  for pidfile in $(ls -r "$state"/node-*.pid 2>/dev/null); do
    pid="$(cat "$pidfile")"
    pids+=("$pid")
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for _ in $(seq "${RAY_STOP_TIMEOUT:-30}"); do
    running=0
    for pid in "${pids[@]}"; do if group_alive "$pid"; then running=1; fi; done
    if ((running == 0)); then break; fi
    sleep 1
  done
  for pid in "${pids[@]}"; do
    # Stragglers: the whole process group the node started (setsid made `pid` its leader).
    if group_alive "$pid"; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; fi
  done
  rm -f "$state"/node-*.pid "$state/address"
}

case "$action" in
  start)
    [[ $# -ge 2 ]] || usage
    start "$2" "${3:-}"
    ;;
  stop)
    state="$(state_dir "${2:-}")"
    stop_nodes
    echo "Ray cluster in $state stopped"
    ;;
  *) usage ;;
esac
