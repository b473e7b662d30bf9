#!/usr/bin/env bash
# Development loop: local Redis + PostgreSQL, debug build, then the services
# (orchestrator, workflow-runner, http-worker) in the foreground with readable
# logs, each line prefixed with the service name. Ctrl-C stops them; if one
# exits, the others are stopped too.
#
# Env (all optional):
#   CARGO_TARGET_DIR   default $HOME/.cache/baton-target
#   DATABASE_URL       default postgres://postgres@127.0.0.1:5432/baton
#   REDIS_URL          default redis://127.0.0.1:6379
#   LOG_LEVEL          default info
#   ORCHESTRATOR_PORT  default 8002     RUNNER_PORT  default 8003
#   HTTP_WORKER_PORT   default 8004     HTTP_WORKER_ALLOW  default 127.0.0.1 (local APIs)
#   BATON_TOKEN        an API key to use; else the one the CLI's credentials file holds for the
#                      orchestrator's address, else a new admin key is made in the database and
#                      saved there (the orchestrator refuses to start with no key at all)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/baton-target}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/baton}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export LOG_LEVEL="${LOG_LEVEL:-info}"
export LOG_FORMAT=pretty
# Profiles on in development: pprof on 6060 (orchestrator) and 6061 (runner), heap included.
export ENABLE_PPROF="${ENABLE_PPROF:-true}"
# Pages from a local dev server (Vite's default port) may call the API over gRPC-Web.
export GRPC_WEB_ALLOWED_ORIGINS="${GRPC_WEB_ALLOWED_ORIGINS:-http://localhost:5173,http://127.0.0.1:5173}"
export _RJEM_MALLOC_CONF="${_RJEM_MALLOC_CONF:-prof:true,prof_active:true,lg_prof_sample:19}"
ORCHESTRATOR_PORT="${ORCHESTRATOR_PORT:-8002}"
RUNNER_PORT="${RUNNER_PORT:-8003}"
HTTP_WORKER_PORT="${HTTP_WORKER_PORT:-8004}"
# http steps may call APIs on this machine in development; the guard still refuses the rest.
export HTTP_WORKER_ALLOW="${HTTP_WORKER_ALLOW:-127.0.0.1}"
BIN="$CARGO_TARGET_DIR/debug"

bash scripts/deps.sh
echo "==> cargo build --bins --features heap-profiling"
cargo build --bins --features baton-orchestrator/heap-profiling,baton-workflow-runner/heap-profiling
ADDR="http://127.0.0.1:$ORCHESTRATOR_PORT"

# The key make dev uses: BATON_TOKEN, else the one saved for ADDR if it works here, else a
# new admin key written straight into the database and saved for ADDR (never printed). The
# orchestrator refuses to start while the database holds no key at all, so one is made first then.
create_key() {
    # The token alone goes to stdout; what it is and how to use it, to stderr.
    "$BIN/baton" auth key create --role admin --name "make dev" --database-url "$DATABASE_URL" 2>/dev/null
}
active_keys="$(psql "$DATABASE_URL" -tAc "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL" 2>/dev/null || echo 0)"
token="${BATON_TOKEN:-}"
new_key=""
if [[ -z "$token" ]]; then
    token="$("$BIN/baton" --addr "$ADDR" auth token 2>/dev/null || true)"
fi
if [[ -z "$token" || "$active_keys" == "0" ]]; then
    echo "==> creating a local admin key in the database (baton auth key create --database-url)"
    token="$(create_key)"
    new_key=1
fi

if [[ -t 1 ]]; then
    c_orch=$'\e[36m' c_run=$'\e[35m' c_http=$'\e[33m' c_off=$'\e[0m'
else
    c_orch='' c_run='' c_http='' c_off=''
    export NO_COLOR=1
fi
# The prefixers ignore Ctrl-C so that the services' shutdown logs still show.
prefix() { trap '' INT; sed -u "s/^/$1 | /"; }

pids=()
# shellcheck disable=SC2317  # invoked from the EXIT trap
stop() {
    local pid
    ((${#pids[@]})) || return 0
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.2
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
}
trap stop EXIT
trap 'echo; echo "==> stopping"; exit 130' INT
trap 'exit 143' TERM

echo "==> orchestrator on 127.0.0.1:$ORCHESTRATOR_PORT, workflow-runner health on 127.0.0.1:$RUNNER_PORT, http-worker health on 127.0.0.1:$HTTP_WORKER_PORT (Ctrl-C stops them)"
GRPC_PORT="$ORCHESTRATOR_PORT" BATON_EXTRA_KINDS="${BATON_EXTRA_KINDS:-http}" "$BIN/baton-orchestrator" \
    > >(prefix "${c_orch}orchestrator   ${c_off}") 2>&1 &
pids+=($!)
GRPC_PORT="$RUNNER_PORT" "$BIN/baton-workflow-runner" \
    > >(prefix "${c_run}workflow-runner${c_off}") 2>&1 &
pids+=($!)
GRPC_PORT="$HTTP_WORKER_PORT" "$BIN/baton-http-worker" \
    > >(prefix "${c_http}http-worker    ${c_off}") 2>&1 &
pids+=($!)

# Once the orchestrator answers: a saved key that does not work here is replaced, and a new key
# is saved for ADDR, so baton commands in other terminals find it.
for _ in $(seq 1 150); do
    "$BIN/baton" --addr "$ADDR" --token "$token" info >/dev/null 2>&1 && break
    if "$BIN/baton" --addr "$ADDR" --token "$token" info 2>&1 | grep -q UNAUTHENTICATED; then
        echo "==> the saved key does not work here: creating a new one"
        token="$(create_key)"
        new_key=1
    fi
    sleep 0.2
done
if [[ -n "$new_key" ]] && BATON_TOKEN="$token" "$BIN/baton" --addr "$ADDR" auth login >/dev/null 2>&1; then
    echo "==> the key is saved for $ADDR in the CLI's credentials file: baton commands find it;"
    echo "    other clients: export BATON_TOKEN=\$(baton auth token)"
fi

# Return as soon as either service exits; the EXIT trap stops the other one.
status=0
wait -n "${pids[@]}" || status=$?
echo "==> a service exited (status $status); stopping the others" >&2
exit "$status"
