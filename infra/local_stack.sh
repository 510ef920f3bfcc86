#!/usr/bin/env bash
# Start or stop a local stack on 127.0.0.1 for a workspace: an MLflow tracking server, a Prefect
# server, a Prefect worker on the `process` work pool `clpipe` (created if missing), and a Ray
# head node. It stops exactly the processes it started (pids kept in WORKSPACE/.stack), never a
# global `ray stop`.
#
#   infra/local_stack.sh start [--db sqlite|postgres] [WORKSPACE]   # then export what it prints
#   infra/local_stack.sh stop  [--drop-db] [WORKSPACE]
#
# No one gets in anonymously: MLflow runs its basic-auth app (`--app-name basic-auth`, admin from
# WORKSPACE/.stack/mlflow-auth.ini) and Prefect checks PREFECT_SERVER_API_AUTH_STRING; both answer
# 401 without credentials (only health checks and the UIs' static files are open). The credentials are generated on a
# workspace's first start, random, into WORKSPACE/.stack/credentials.env (mode 0600, `export`
# lines: MLFLOW_TRACKING_USERNAME/PASSWORD, PREFECT_API_AUTH_STRING), reused by later starts (the
# MLflow admin is created once, with the password of the first start), and handed to the worker
# and the Ray head; `source` the file to point clpipe at the stack. A registered model is code
# (models from code), so write access to the registry is the trust boundary.
#
# --db sqlite (the default): MLflow keeps WORKSPACE/mlflow.db, Prefect WORKSPACE/.prefect.
# --db postgres: both servers keep their state in PostgreSQL at PG_HOST:PG_PORT as PG_USER
# (127.0.0.1, 5432, postgres; password-less: trust auth or ~/.pgpass). Each stack gets its own two
# databases, clpipe_<first 10 hex of sha1(WORKSPACE's absolute path)>_prefect and ..._mlflow, and a
# third, ..._auth, for MLflow's users and permissions, created on the first start (with `createdb`)
# and reused by later starts of the same workspace; `stop --drop-db` drops them (with sqlite, the
# users and permissions are in WORKSPACE/.stack/mlflow-auth.db). Needs the PostgreSQL client tools
# (psql, createdb, dropdb).
#
# Ports: MLFLOW_PORT (5000), PREFECT_PORT (4200), RAY_PORT (6380). WITH_RAY=0 and WITH_WORKER=0
# leave those out. Needs the project's venv (VENV_BIN, default .venv/bin).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${VENV_BIN:-$here/.venv/bin}"
action="${1:-}"
shift || true
db=sqlite
drop_db=0
workspace_arg=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --db) db="${2:-}"; shift 2 ;;
    --db=*) db="${1#--db=}"; shift ;;
    --drop-db) drop_db=1; shift ;;
    *) workspace_arg="$1"; shift ;;
  esac
done
[[ "$db" == sqlite || "$db" == postgres ]] || { echo "--db must be sqlite or postgres, not '$db'" >&2; exit 2; }
workspace_arg="${workspace_arg:-${CLPIPE_WORKSPACE:-$here/workspace}}"
workspace="$(mkdir -p "$workspace_arg" && cd "$workspace_arg" && pwd)"
state="$workspace/.stack"
mlflow_port="${MLFLOW_PORT:-5000}"
prefect_port="${PREFECT_PORT:-4200}"
ray_port="${RAY_PORT:-6380}"
pg_host="${PG_HOST:-127.0.0.1}"
pg_port="${PG_PORT:-5432}"
pg_user="${PG_USER:-postgres}"
db_prefix="clpipe_$(printf %s "$workspace" | sha1sum | cut -c1-10)"

wait_for() {  # url, seconds, service[, text the answer must hold]: fail as soon as the service exits
  for _ in $(seq "$2"); do
    if [[ -z "${4:-}" ]]; then
      curl -fsS "$1" >/dev/null 2>&1 && return 0
    else  # a Prefect filter endpoint: POST {} with the stack's credentials (never on curl's command line)
      curl -fsS -K <(printf 'user = "%s"\n' "$PREFECT_API_AUTH_STRING") -X POST -H 'Content-Type: application/json' \
        -d '{}' "$1" 2>/dev/null | grep -qF "$4" && return 0
    fi
    if ! kill -0 "$(cat "$state/$3.pid")" 2>/dev/null; then
      echo "$3 exited before answering $1; its log, $state/$3.log, ends:" >&2
      tail -n 5 "$state/$3.log" >&2
      return 1
    fi
    sleep 1
  done
  echo "timed out waiting for $1 (logs in $state)" >&2
  return 1
}

psql_admin() {  # sql: run against the maintenance database `postgres`
  psql -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres -v ON_ERROR_STOP=1 -Atc "$1"
}

ensure_database() {  # name
  if ! pg_isready -q -h "$pg_host" -p "$pg_port"; then
    echo "PostgreSQL is not accepting connections on $pg_host:$pg_port; start it first" \
      "(pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start)" >&2
    return 1
  fi
  if [[ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = '$1'")" != 1 ]]; then
    createdb -h "$pg_host" -p "$pg_port" -U "$pg_user" "$1"
  fi
  grep -qx "$1" "$state/databases" 2>/dev/null || echo "$1" >>"$state/databases"
}

random_secret() {  # 48 hex digits from the kernel's CSPRNG
  od -An -N24 -tx1 /dev/urandom | tr -d ' \n'
}

credentials() {  # the stack's credentials: read from $state/credentials.env, generated on the first start
  local file="$state/credentials.env"
  if [[ ! -f "$file" ]]; then
    if [[ "$db" == sqlite && -f "$state/mlflow-auth.db" ]]; then
      # MLflow keeps the admin password of the first start; a new one would lock everyone out.
      echo "$file is gone but MLflow's users are still in $state/mlflow-auth.db; restore the file," \
        "or remove $state/mlflow-auth.db to start its users afresh" >&2
      return 1
    fi
    local password
    password="$(random_secret)"
    (umask 077 && cat >"$file" <<CREDENTIALS
# infra/local_stack.sh: credentials of the stack of $workspace (keep this file to yourself)
export MLFLOW_TRACKING_USERNAME=clpipe
export MLFLOW_TRACKING_PASSWORD=$password
export PREFECT_API_AUTH_STRING=clpipe:$(random_secret)
CREDENTIALS
    )
  fi
  chmod 600 "$file"
  # shellcheck disable=SC1090
  source "$file"
  [[ -n "${MLFLOW_TRACKING_USERNAME:-}" && -n "${MLFLOW_TRACKING_PASSWORD:-}" && -n "${PREFECT_API_AUTH_STRING:-}" ]] || {
    echo "$file lacks MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD or PREFECT_API_AUTH_STRING" >&2; return 1; }
}

mlflow_auth_config() {  # auth database URI: write MLflow's basic-auth ini (mode 0600) and print its path
  local ini="$state/mlflow-auth.ini"
  (umask 077 && cat >"$ini" <<INI
[mlflow]
# Users created later by the admin may read everything and change nothing until granted more.
default_permission = READ
database_uri = $1
# The admin is created with this password when the auth database is empty, and kept after.
admin_username = $MLFLOW_TRACKING_USERNAME
admin_password = $MLFLOW_TRACKING_PASSWORD
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
grant_default_workspace_access = false
INI
  )
  chmod 600 "$ini"
  echo "$ini"
}

start() {
  mkdir -p "$state" "$workspace/mlartifacts"
  chmod 700 "$state"
  local mlflow_store="sqlite:///$workspace/mlflow.db" prefect_db=() auth_store="sqlite:///$state/mlflow-auth.db"
  if [[ "$db" == postgres ]]; then
    ensure_database "${db_prefix}_mlflow"
    ensure_database "${db_prefix}_prefect"
    local auth_database_existed=0
    [[ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = '${db_prefix}_auth'")" == 1 ]] && auth_database_existed=1
    if [[ "$auth_database_existed" == 1 && ! -f "$state/credentials.env" ]]; then
      echo "$state/credentials.env is gone but MLflow's users are still in the database ${db_prefix}_auth;" \
        "restore the file, or drop that database (stop --drop-db) to start its users afresh" >&2
      return 1
    fi
    ensure_database "${db_prefix}_auth"
    mlflow_store="postgresql://$pg_user@$pg_host:$pg_port/${db_prefix}_mlflow"
    auth_store="postgresql://$pg_user@$pg_host:$pg_port/${db_prefix}_auth"
    prefect_db=("PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://$pg_user@$pg_host:$pg_port/${db_prefix}_prefect")
  fi
  credentials  # exports MLFLOW_TRACKING_USERNAME/PASSWORD and PREFECT_API_AUTH_STRING to all started here
  local prefect_env=(PREFECT_HOME="$workspace/.prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1)
  local api="http://127.0.0.1:$prefect_port/api" tracking="http://127.0.0.1:$mlflow_port"

  # Secrets go through the environment and files of mode 0600, never on a command line (ps shows those).
  # MLflow's job runner (four huey consumers for its GenAI jobs, which clpipe does not use) stays off
  # unless MLFLOW_SERVER_ENABLE_JOB_EXECUTION says otherwise: on 2 cores they cost ~1 GB and steady CPU.
  env MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}" \
    MLFLOW_AUTH_CONFIG_PATH="$(mlflow_auth_config "$auth_store")" MLFLOW_FLASK_SERVER_SECRET_KEY="$(random_secret)" \
    "$bin/mlflow" server --app-name basic-auth --backend-store-uri "$mlflow_store" \
    --artifacts-destination "$workspace/mlartifacts" --host 127.0.0.1 --port "$mlflow_port" \
    >"$state/mlflow.log" 2>&1 &
  echo $! >"$state/mlflow.pid"

  # The UI asks the API URL from /ui-settings, which names port 4200 unless told the one in use.
  env "${prefect_env[@]}" ${prefect_db[@]+"${prefect_db[@]}"} PREFECT_SERVER_API_AUTH_STRING="$PREFECT_API_AUTH_STRING" \
    PREFECT_SERVER_UI_API_URL="$api" \
    "$bin/prefect" server start --host 127.0.0.1 --port "$prefect_port" >"$state/prefect.log" 2>&1 &
  echo $! >"$state/prefect.pid"

  if [[ "${WITH_RAY:-1}" == 1 ]]; then
    # Ray 2.60's token authentication: the head and every driver need RAY_AUTH_MODE=token.
    # Its workers (training's rank 0 logging to MLflow, Ray Data loading a registered model) run
    # with the head's environment, which holds the MLflow credentials exported above.
    RAY_AUTH_MODE=token RAY_ADDRESS= "$bin/ray" start --head --block --node-ip-address=127.0.0.1 --port="$ray_port" \
      --dashboard-host=127.0.0.1 --temp-dir="/tmp/ray-clpipe-$ray_port" >"$state/ray.log" 2>&1 &
    echo $! >"$state/ray.pid"
  fi

  wait_for "$tracking/health" 120 mlflow
  wait_for "$api/health" 180 prefect

  if [[ "${WITH_WORKER:-1}" == 1 ]]; then
    # The worker runs deployments' flow runs as subprocesses from the repository root, so
    # `flows.*` entrypoints import, with the same services and workspace as this stack. It
    # creates the pool, of its own type, when the server has none of that name.
    local worker_env=("${prefect_env[@]}" PREFECT_API_URL="$api" MLFLOW_TRACKING_URI="$tracking"
                      CLPIPE_WORKSPACE="$workspace" PATH="$bin:$PATH")
    (cd "$here" && exec env "${worker_env[@]}" "$bin/prefect" worker start --pool clpipe --type process \
      --name "clpipe-$prefect_port") >"$state/worker.log" 2>&1 &
    echo $! >"$state/worker.pid"
    wait_for "$api/work_pools/clpipe/workers/filter" 120 worker "\"clpipe-$prefect_port\""
  fi

  cat <<ENV
# local stack up ($db); point clpipe at it with:
export MLFLOW_TRACKING_URI=$tracking
export PREFECT_API_URL=$api
export CLPIPE_WORKSPACE=$workspace
# and its credentials (mode 0600; MLflow's UI asks for MLFLOW_TRACKING_USERNAME/PASSWORD, Prefect's for PREFECT_API_AUTH_STRING):
source $state/credentials.env
ENV
  [[ "$db" == postgres ]] && echo "# databases: ${db_prefix}_mlflow ${db_prefix}_prefect ${db_prefix}_auth on $pg_host:$pg_port"
  [[ "${WITH_RAY:-1}" == 1 ]] && echo "export RAY_AUTH_MODE=token RAY_ADDRESS=127.0.0.1:$ray_port"
  return 0
}

stop_services() {  # services...: TERM them together, wait up to 30 s for all, KILL what remains
  local service pid pids=() running _
  for service in "$@"; do
    [[ -f "$state/$service.pid" ]] || continue
    pid="$(cat "$state/$service.pid")"
    if kill -TERM "$pid" 2>/dev/null; then pids+=("$pid"); fi
    rm -f "$state/$service.pid"
  done
  for _ in $(seq 150); do
    running=0
    for pid in ${pids[@]+"${pids[@]}"}; do if kill -0 "$pid" 2>/dev/null; then running=1; fi; done
    if ((running == 0)); then break; fi
    sleep 0.2
  done
  for pid in ${pids[@]+"${pids[@]}"}; do
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
}

stop() {
  # The worker before the servers it talks to; the servers do not depend on each other.
  stop_services worker
  stop_services ray prefect mlflow
  if [[ "$drop_db" == 1 && -f "$state/databases" ]]; then
    while read -r name; do
      dropdb -h "$pg_host" -p "$pg_port" -U "$pg_user" --if-exists --force "$name"
    done <"$state/databases"
    rm -f "$state/databases"
  fi
  echo "local stack stopped"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start [--db sqlite|postgres] [WORKSPACE] | stop [--drop-db] [WORKSPACE]" >&2; exit 2 ;;
esac
