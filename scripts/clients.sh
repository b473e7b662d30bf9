#!/usr/bin/env bash
# The generated Go, Python and TypeScript clients: their toolchains, generation, and tests.
#
#   scripts/clients.sh deps                  install what generating and testing the clients needs,
#                                            then prepare
#   scripts/clients.sh prepare               compile the Go tests ahead (a cold build takes minutes)
#   scripts/clients.sh generate              regenerate clients/{go,python,typescript} (buf.gen.yaml)
#   scripts/clients.sh clean                 remove the generated code
#   scripts/clients.sh check                 regenerate and fail if anything differs from git
#   scripts/clients.sh test LANG...          run LANG's end-to-end tests against BATON_ADDR
#   scripts/clients.sh example LANG          run LANG's example against BATON_ADDR
#
# LANG is go, python or typescript (Node, over gRPC and gRPC-Web), or browser: the TypeScript
# client in Chromium over gRPC-Web, from a page on BATON_PAGE_ORIGIN (default
# http://127.0.0.1:5173), which must be in the orchestrator's GRPC_WEB_ALLOWED_ORIGINS. BATON_ADDR
# (default 127.0.0.1:8002) is a running orchestrator's gRPC address (`baton dev` starts one), and
# BATON_TOKEN an API key it accepts; unset, the token the baton CLI sends to BATON_ADDR
# (`baton auth token`: `baton dev` and `baton auth login` save one). The tests need auth on.
# A suite that runs no test, or skips one, fails: every client test can run where deps ran.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TOOLS="$ROOT/.tools"
VENV="$TOOLS/venv"
BUF="$TOOLS/node_modules/.bin/buf"
TS="$ROOT/clients/typescript"
# Debian's Go toolchain and libraries build offline in GOPATH mode. The GOPATH lives outside the
# clone (a link back to it would loop) and is one per clone.
GOPATH_DIR="${BATON_GOPATH:-$HOME/.cache/baton-gopath/$(printf '%s' "$ROOT" | md5sum | cut -c1-12)}"
GO_IMPORT_ROOT="github.com/baton-run/baton"
APT_PACKAGES=(golang-go protobuf-compiler protoc-gen-go protoc-gen-go-grpc
    golang-google-protobuf-dev golang-google-grpc-dev golang-github-golang-protobuf-1-5-dev
    chromium)
GENERATED=(clients/go/baton clients/python/src/baton clients/typescript/src/gen)

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# A stamp per input file, so `deps` reinstalls only when a pinned version changes.
stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$(md5sum "$2" | cut -d' ' -f1)" ]; }
stamp_write() { md5sum "$2" | cut -d' ' -f1 >"$1"; }

deps() {
    local missing=()
    for package in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
            || missing+=("$package")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing ${missing[*]} (apt-get)"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
    make --no-print-directory buf
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating $VENV"
        if ! python3 -m venv "$VENV"; then
            # Debian's python3 keeps venv in a separate package.
            rm -rf "$VENV"
            as_root apt-get install -y -qq python3-venv >/dev/null
            python3 -m venv "$VENV"
        fi
    fi
    if ! stamp_ok "$VENV/.requirements" clients/python/requirements-dev.txt; then
        say "installing clients/python/requirements-dev.txt into $VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check -r clients/python/requirements-dev.txt
        stamp_write "$VENV/.requirements" clients/python/requirements-dev.txt
    fi
    if ! stamp_ok "$TS/node_modules/.package-lock" "$TS/package-lock.json"; then
        say "installing clients/typescript packages (npm ci)"
        (cd "$TS" && npm ci --no-audit --no-fund --loglevel=error)
        stamp_write "$TS/node_modules/.package-lock" "$TS/package-lock.json"
    fi
    prepare
}

# Fills Go's build cache with gRPC and the test binaries, so `test go` only runs them.
prepare() {
    say "compiling the Go client and its tests"
    (
        go_env
        go vet ./...
        go test -count=1 -run '^$' ./... >/dev/null
    )
}

need() {
    command -v "$1" >/dev/null 2>&1 || [ -x "$1" ] || die "$1 not found: run 'make client-deps'"
}

clean() {
    rm -rf "${GENERATED[@]}"
}

generate() {
    need "$BUF"
    need protoc-gen-go
    need protoc-gen-go-grpc
    need "$VENV/bin/python"
    need "$TS/node_modules/.bin/protoc-gen-ts"
    clean
    say "buf generate (buf.gen.yaml)"
    "$BUF" generate
    # Python packages for the generated modules (they import each other as baton.v1.*).
    printf '"""Generated Baton API client (see clients/README.md)."""\n' \
        >clients/python/src/baton/__init__.py
    printf '"""baton.v1 messages and gRPC stubs, generated from proto/baton/v1."""\n' \
        >clients/python/src/baton/v1/__init__.py
    : >clients/python/src/baton/py.typed
    # gofmt's output is what Go users compare against.
    gofmt -l clients/go | { ! grep . ; } || die "generated Go code is not gofmt-clean"
}

check() {
    generate
    local changes
    changes="$(git status --porcelain -- clients)"
    if [ -n "$changes" ]; then
        echo "$changes"
        git --no-pager diff --stat -- clients
        die "generated clients differ from the committed ones: run 'make generate-clients' and commit"
    fi
    say "generated clients match proto/ and buf.gen.yaml"
}

go_env() {
    need go
    local link="$GOPATH_DIR/src/$GO_IMPORT_ROOT"
    if [ "$(readlink "$link" 2>/dev/null)" != "$ROOT" ]; then
        # Renamed into place, so a concurrent run never finds the link missing.
        mkdir -p "$(dirname "$link")"
        ln -sfn "$ROOT" "$link.$$"
        mv -Tf "$link.$$" "$link"
    fi
    export GO111MODULE=off GOPATH="$GOPATH_DIR:/usr/share/gocode" GOFLAGS=
    cd "$link/clients/go"
}

# Fails unless a suite passed at least one test and skipped none: a test that cannot run here
# must not pass silently.
suite_ran() {
    local lang="$1" passed="$2" skipped="$3"
    [ "${passed:-0}" -gt 0 ] || die "$lang: no test ran"
    [ "${skipped:-0}" -eq 0 ] || die "$lang: $skipped tests skipped; every client test must run"
    say "$lang: $passed tests passed"
}

test_go() {
    (
        go_env
        go vet ./...
        local log
        log="$(mktemp)"
        trap 'rm -f "$log"' EXIT
        go test -count=1 -v ./... 2>&1 | tee "$log"
        suite_ran go "$(grep -cE '^\s*--- PASS' "$log")" "$(grep -cE '^\s*--- SKIP' "$log")"
    )
}

test_python() {
    need "$VENV/bin/python"
    (
        local report
        report="$(mktemp)"
        trap 'rm -f "$report"' EXIT
        cd clients/python
        PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
            --junitxml="$report"
        local tests skipped
        tests="$(grep -o ' tests="[0-9]*"' "$report" | head -1 | tr -dc 0-9)"
        skipped="$(grep -o ' skipped="[0-9]*"' "$report" | head -1 | tr -dc 0-9)"
        suite_ran python "$((tests - skipped))" "$skipped"
    )
}

# Compiles the TypeScript package into a directory of this run's own, beside dist/ so the
# compiled files find node_modules and the repository the same way; removed when the calling
# subshell exits. Concurrent runs, here or in other clones, never share an output directory.
ts_build() {
    need "$TS/node_modules/.bin/tsc"
    # What a run killed outright left behind; no run lasts a day.
    find "$TS" -maxdepth 1 -name '.build-*' -mmin +1440 -exec rm -rf {} +
    out="$(mktemp -d "$TS/.build-XXXXXX")"
    trap 'rm -rf "$out"' EXIT
    "$TS/node_modules/.bin/tsc" -p "$TS" --outDir "$out"
}

# node --test on the compiled test files; the TAP summary says how many passed and skipped.
node_suite() {
    local lang="$1"
    shift
    node --test --test-reporter=spec --test-reporter-destination=stdout \
        --test-reporter=tap --test-reporter-destination="$out/results.tap" "$@"
    suite_ran "$lang" "$(sed -n 's/^# pass //p' "$out/results.tap")" \
        "$(($(sed -n 's/^# skipped //p' "$out/results.tap") + $(sed -n 's/^# todo //p' "$out/results.tap")))"
}

test_typescript() {
    (
        ts_build
        node_suite typescript "$out/test/e2e.test.js"
    )
}

test_browser() {
    need "${CHROMIUM:-/usr/bin/chromium}"
    (
        ts_build
        node_suite browser "$out/test-browser/browser.test.js"
    )
}

# The API key the examples and tests send: BATON_TOKEN, else the token the baton CLI would send
# to BATON_ADDR. Never printed.
find_token() {
    [ -n "${BATON_TOKEN:-}" ] && return 0
    local baton target="${CARGO_TARGET_DIR:-$HOME/.cache/baton-target}"
    for baton in "$(command -v baton || true)" "$target/debug/baton" "$target/release/baton"; do
        [ -n "$baton" ] && [ -x "$baton" ] || continue
        if BATON_TOKEN="$("$baton" --addr "$BATON_ADDR" auth token 2>/dev/null)"; then
            export BATON_TOKEN
            say "BATON_TOKEN: the token $baton sends to $BATON_ADDR"
            return 0
        fi
    done
    unset BATON_TOKEN
    say "BATON_TOKEN is not set and the baton CLI has no token for $BATON_ADDR: calls will be UNAUTHENTICATED"
}

example() {
    case "$1" in
        go) (go_env && go run ./examples/hello) ;;
        python) PYTHONPATH="$ROOT/clients/python/src" "$VENV/bin/python" clients/python/examples/hello.py ;;
        typescript) (
            ts_build
            node "$out/examples/hello.js"
        ) ;;
        *) die "unknown language '$1' (go, python, typescript)" ;;
    esac
}

export BATON_ADDR="${BATON_ADDR:-127.0.0.1:8002}"
command="${1:-}"
shift || true
case "$command" in
    deps) deps ;;
    prepare) prepare ;;
    generate) generate ;;
    clean) clean ;;
    check) check ;;
    test)
        [ "$#" -gt 0 ] || set -- go python typescript
        find_token
        for lang in "$@"; do
            case "$lang" in
                go | python | typescript | browser) say "$lang client tests against $BATON_ADDR"; "test_$lang" ;;
                *) die "unknown language '$lang' (go, python, typescript, browser)" ;;
            esac
        done
        ;;
    example)
        find_token
        example "${1:?usage: scripts/clients.sh example go|python|typescript}"
        ;;
    *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
