#!/usr/bin/env bash
# The production path end to end: local Redis + PostgreSQL, release build, a first admin key
# written straight into the database (`baton auth key create --database-url`, as an operator
# bootstraps a deployment), both services in the background, then apply examples/hello.yaml and
# follow one run of it with that key in BATON_TOKEN. The key is revoked on exit.
# Exits with the status of `baton run start ... --follow`.
#
# Env (all optional):
#   CARGO_TARGET_DIR   default $HOME/.cache/baton-target
#   DATABASE_URL       default postgres://postgres@127.0.0.1:5432/baton
#   REDIS_URL          default redis://127.0.0.1:6379
#   ORCHESTRATOR_PORT  default 8002     RUNNER_PORT  default 8003
#   START_TIMEOUT      seconds to wait for the services to listen (default 60)
#   RUN_TIMEOUT        seconds to let the followed run take (default 300)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/baton-target}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/baton}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
ORCHESTRATOR_PORT="${ORCHESTRATOR_PORT:-8002}"
RUNNER_PORT="${RUNNER_PORT:-8003}"
export BATON_ADDR="http://127.0.0.1:$ORCHESTRATOR_PORT"
START_TIMEOUT="${START_TIMEOUT:-60}"
RUN_TIMEOUT="${RUN_TIMEOUT:-300}"
BIN="$CARGO_TARGET_DIR/release"
LOGS=.dev/logs

step() { printf '\n==> %s\n' "$*"; }
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

step "dependencies (scripts/deps.sh)"
bash scripts/deps.sh

step "build (cargo build --release --bins)"
cargo build --release --bins

for port in "$ORCHESTRATOR_PORT" "$RUNNER_PORT"; do
    if port_open "$port"; then
        echo "demo: port $port is already in use (is 'make dev' or another demo running?)" >&2
        exit 1
    fi
done

mkdir -p "$LOGS"
key_id=
pids=()
# shellcheck disable=SC2317  # invoked from the EXIT trap
cleanup() {
    local pid
    if [[ -n "$key_id" ]]; then
        # While the orchestrator still answers.
        "$BIN/baton" auth key revoke "$key_id" >/dev/null 2>&1 \
            && echo "==> revoked the demo's API key $key_id" \
            || echo "demo: could not revoke API key $key_id (baton auth key revoke $key_id)" >&2
        key_id=
    fi
    ((${#pids[@]})) || return 0
    echo
    echo "==> stopping services"
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
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_logs() {
    local f
    for f in "$LOGS"/orchestrator.log "$LOGS"/workflow-runner.log; do
        echo "----- last lines of $f -----" >&2
        tail -n 40 "$f" >&2 || true
    done
}

step "bootstrap an admin key (baton auth key create --role admin --database-url ...)"
# Stdout is the token alone; what it is and how to use it go to stderr. The orchestrator refuses
# to start while no key exists.
BATON_TOKEN="$("$BIN/baton" auth key create --role admin --name demo-services \
    --database-url "$DATABASE_URL")"
export BATON_TOKEN
key_id="${BATON_TOKEN#bk_}"
key_id="${key_id%%_*}"

step "start services (logs in $LOGS/)"
# NO_COLOR: the logs go to files, keep them free of ANSI escapes.
GRPC_PORT="$ORCHESTRATOR_PORT" LOG_FORMAT="${LOG_FORMAT:-pretty}" NO_COLOR=1 \
    "$BIN/baton-orchestrator" >"$LOGS/orchestrator.log" 2>&1 &
pids+=($!)
orchestrator_pid=$!
GRPC_PORT="$RUNNER_PORT" LOG_FORMAT="${LOG_FORMAT:-pretty}" NO_COLOR=1 \
    "$BIN/baton-workflow-runner" >"$LOGS/workflow-runner.log" 2>&1 &
pids+=($!)
runner_pid=$!

wait_port() { # name pid port
    local deadline=$((SECONDS + START_TIMEOUT))
    until port_open "$3"; do
        if ! kill -0 "$2" 2>/dev/null; then
            echo "demo: $1 exited before listening on port $3" >&2
            show_logs
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            echo "demo: $1 not listening on port $3 after ${START_TIMEOUT}s" >&2
            show_logs
            exit 1
        fi
        sleep 0.25
    done
    echo "$1 listening on 127.0.0.1:$3 (pid $2)"
}
wait_port baton-orchestrator "$orchestrator_pid" "$ORCHESTRATOR_PORT"
wait_port baton-workflow-runner "$runner_pid" "$RUNNER_PORT"

step "baton auth whoami (BATON_TOKEN holds the bootstrap key)"
"$BIN/baton" auth whoami

step "baton workflow apply -f examples/hello.yaml"
"$BIN/baton" workflow apply -f examples/hello.yaml

step "baton run start examples/hello@1 --input name=Ada --input count=3 --follow"
status=0
timeout --foreground "$RUN_TIMEOUT" "$BIN/baton" run start examples/hello@1 \
    --input name=Ada --input count=3 --follow || status=$?
if ((status == 124)); then
    echo "demo: the run did not finish within ${RUN_TIMEOUT}s" >&2
fi

step "baton run list --limit 5"
"$BIN/baton" run list --limit 5 || echo "demo: 'baton run list' failed" >&2

if ((status != 0)); then
    echo "demo: run failed (exit $status)" >&2
    show_logs
fi
exit "$status"
