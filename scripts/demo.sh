#!/usr/bin/env bash
# One-command demo on the embedded backend: needs only the Rust toolchain. Builds the `baton`
# CLI (release), starts `baton dev` in the background on a fresh SQLite file, applies
# examples/hello.yaml and follows one run of it to completion, then stops `baton dev`.
# Exits with the status of `baton run start ... --follow`.
#
# Authentication is on, as in production: `baton dev` saves its local admin key in a credentials
# file of the demo's own (.dev/demo/credentials.json, so yours is left alone), where the CLI
# finds it with no token given.
#
# Env (all optional):
#   CARGO_TARGET_DIR  default $HOME/.cache/baton-target
#   DEMO_PORT         gRPC API port of `baton dev` (default 8002)
#   DEMO_DB           the SQLite file (default: a fresh one under .dev/demo/)
#   START_TIMEOUT     seconds to wait for `baton dev` to listen (default 60)
#   RUN_TIMEOUT       seconds to let the followed run take (default 300)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/baton-target}"
DEMO_PORT="${DEMO_PORT:-8002}"
START_TIMEOUT="${START_TIMEOUT:-60}"
RUN_TIMEOUT="${RUN_TIMEOUT:-300}"
BIN="$CARGO_TARGET_DIR/release/baton"
LOGS=.dev/demo
mkdir -p "$LOGS"
DEMO_DB="${DEMO_DB:-$LOGS/demo-$(date +%s)-$$.db}"
ADDR="http://127.0.0.1:$DEMO_PORT"
# Shared by `baton dev` (which writes its key there) and every CLI call below.
export BATON_CREDENTIALS="$PWD/$LOGS/credentials.json"
unset BATON_TOKEN

step() { printf '\n==> %s\n' "$*"; }
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

step "build (cargo build --release -p baton-cli)"
cargo build --release -p baton-cli

if port_open "$DEMO_PORT"; then
    echo "demo: port $DEMO_PORT is in use (is 'baton dev' already running?); set DEMO_PORT" >&2
    exit 1
fi

dev_pid=
# shellcheck disable=SC2317  # invoked from the EXIT trap
cleanup() {
    [[ -n "$dev_pid" ]] || return 0
    echo
    echo "==> stopping baton dev"
    kill -TERM "$dev_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$dev_pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL "$dev_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    dev_pid=
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_log() {
    echo "----- last lines of $LOGS/baton-dev.log -----" >&2
    tail -n 40 "$LOGS/baton-dev.log" >&2 || true
}

step "baton dev --db $DEMO_DB --port $DEMO_PORT (log in $LOGS/baton-dev.log)"
# The other ports (HTTP, Prometheus, pprof, runner health) go to free ones, so the demo never
# collides with a running `baton dev` or services.
NO_COLOR=1 "$BIN" dev --db "$DEMO_DB" --port "$DEMO_PORT" --free-side-ports >"$LOGS/baton-dev.log" 2>&1 &
dev_pid=$!
deadline=$((SECONDS + START_TIMEOUT))
# Ready once the API answers the CLI with the key `baton dev` saved.
until "$BIN" --addr "$ADDR" info >/dev/null 2>&1; do
    if ! kill -0 "$dev_pid" 2>/dev/null; then
        echo "demo: baton dev exited before listening on port $DEMO_PORT" >&2
        show_log
        exit 1
    fi
    if ((SECONDS >= deadline)); then
        echo "demo: baton dev not answering on port $DEMO_PORT after ${START_TIMEOUT}s" >&2
        "$BIN" --addr "$ADDR" info >&2 || true
        show_log
        exit 1
    fi
    sleep 0.25
done
echo "baton dev listening on 127.0.0.1:$DEMO_PORT (pid $dev_pid)"
# Where its local admin key is (never the token itself).
sed -n '/^Local admin key/,/Other clients/p' "$LOGS/baton-dev.log"

step "baton workflow apply -f examples/hello.yaml"
"$BIN" --addr "$ADDR" workflow apply -f examples/hello.yaml

step "baton run start examples/hello@1 --input name=Ada --input count=3 --follow"
status=0
timeout --foreground "$RUN_TIMEOUT" "$BIN" --addr "$ADDR" run start examples/hello@1 \
    --input name=Ada --input count=3 --follow || status=$?
if ((status == 124)); then
    echo "demo: the run did not finish within ${RUN_TIMEOUT}s" >&2
fi

step "baton run list --limit 5"
"$BIN" --addr "$ADDR" run list --limit 5 || echo "demo: 'baton run list' failed" >&2

if ((status != 0)); then
    echo "demo: run failed (exit $status)" >&2
    show_log
fi
exit "$status"
