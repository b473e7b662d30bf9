#!/usr/bin/env bash
# Runs the whole test suite again and again under background CPU load, stopping at the first
# failure: a flaky test shows up here instead of in someone's landing.
#
#   scripts/soak.sh [-n RUNS] [-l LOAD] [-- NEXTEST_ARGS...]
#
#   -n RUNS   suite runs in a row that must all pass (default 20, env SOAK_RUNS)
#   -l LOAD   busy processes beside the suite (default: one per core, env SOAK_LOAD); stress-ng
#             when installed, else shell busy loops
#
# Expects what `make test` expects (Redis and PostgreSQL reachable through DATABASE_URL and
# REDIS_URL, the client toolchains from `make client-deps`). Each run's output is kept in
# .dev/soak/run-N.log; the last line says how many runs passed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

RUNS="${SOAK_RUNS:-20}"
LOAD="${SOAK_LOAD:-$(nproc)}"
while getopts "n:l:" opt; do
    case "$opt" in
        n) RUNS="$OPTARG" ;;
        l) LOAD="$OPTARG" ;;
        *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ "${1:-}" = "--" ] && shift

LOGS="$ROOT/.dev/soak"
mkdir -p "$LOGS"
say() { printf 'soak: %s\n' "$*"; }

say "building the suite"
cargo nextest run --workspace --no-run "$@"

pids=()
stop_load() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop_load EXIT
if [ "$LOAD" -gt 0 ]; then
    if command -v stress-ng >/dev/null 2>&1; then
        stress-ng --cpu "$LOAD" --quiet &
        pids+=($!)
        say "background load: stress-ng --cpu $LOAD"
    else
        for _ in $(seq "$LOAD"); do
            bash -c 'while :; do :; done' &
            pids+=($!)
        done
        say "background load: $LOAD busy loops (stress-ng not installed)"
    fi
fi

for run in $(seq "$RUNS"); do
    started=$SECONDS
    if cargo nextest run --workspace --no-fail-fast "$@" >"$LOGS/run-$run.log" 2>&1; then
        say "run $run/$RUNS passed in $((SECONDS - started)) s"
    else
        grep -E '^\s+(FAIL|TIMEOUT|SIGSEGV|SIGABRT)' "$LOGS/run-$run.log" | sort -u || true
        say "run $run/$RUNS FAILED after $((run - 1)) passing runs; output in $LOGS/run-$run.log"
        exit 1
    fi
done
say "all $RUNS runs passed under a background load of $LOAD"
