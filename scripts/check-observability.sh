#!/usr/bin/env bash
# Check Baton's observability config under observability/:
#   - promtool check rules   on every rule file in observability/prometheus/*.yml
#   - promtool check config  on observability/prometheus/prometheus.yml
#   - promtool test rules    on observability/prometheus/tests/*.yml
#   - python3 -m json.tool   on every JSON file under observability/grafana
#   - promtool check metrics on each FILE argument (a /metrics exposition dump)
# Installs promtool (Debian package `prometheus`) when it is missing.
#
# Usage: scripts/check-observability.sh [METRICS_DUMP ...]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OBS="$ROOT/observability"
PROM="$OBS/prometheus"

say() { printf 'check-observability: %s\n' "$*"; }
die() { printf 'check-observability: error: %s\n' "$*" >&2; exit 1; }

# Root runs commands directly; anyone else goes through sudo when it exists.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root or sudo to run: $*"
    fi
}

ensure_promtool() {
    command -v promtool >/dev/null 2>&1 && return 0
    command -v apt-get >/dev/null 2>&1 || die "promtool missing and apt-get unavailable; install Prometheus' promtool"
    say "promtool not found; installing the Debian package 'prometheus'"
    export DEBIAN_FRONTEND=noninteractive
    if ! as_root apt-get install -y prometheus; then
        as_root apt-get update
        as_root apt-get install -y prometheus
    fi
    command -v promtool >/dev/null 2>&1 || die "promtool still missing after installing 'prometheus'"
}

# Every argument must be a readable file; check before installing anything.
for f in "$@"; do
    [[ -f "$f" && -r "$f" ]] || die "not a readable file: $f"
done

ensure_promtool
command -v python3 >/dev/null 2>&1 || die "python3 is required to validate the dashboards"

passed=0
failed=0
failures=()
run_check() {
    local name="$1"
    shift
    say "== $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
    fi
}

check_json() { python3 -m json.tool "$1" >/dev/null && echo "  valid JSON"; }
check_metrics() { promtool check metrics <"$1" && echo "  metrics OK"; }

shopt -s nullglob

rule_files=()
for f in "$PROM"/*.yml "$PROM"/*.yaml; do
    [[ "$(basename "$f")" == prometheus.yml ]] && continue
    rule_files+=("$f")
done
[[ ${#rule_files[@]} -gt 0 ]] || die "no rule files in $PROM"
run_check "promtool check rules" promtool check rules "${rule_files[@]}"

if [[ -f "$PROM/prometheus.yml" ]]; then
    # Relative rule_files in the config resolve against its directory.
    run_check "promtool check config" promtool check config "$PROM/prometheus.yml"
fi

tests=("$PROM"/tests/*.yml "$PROM"/tests/*.yaml)
[[ ${#tests[@]} -gt 0 ]] || die "no rule tests in $PROM/tests"
run_check "promtool test rules" promtool test rules "${tests[@]}"

json_files=()
while IFS= read -r -d '' f; do json_files+=("$f"); done \
    < <(find "$OBS/grafana" -type f -name '*.json' -print0 2>/dev/null | sort -z)
[[ ${#json_files[@]} -gt 0 ]] || die "no JSON files under $OBS/grafana"
for f in "${json_files[@]}"; do
    run_check "json ${f#"$ROOT"/}" check_json "$f"
done

for f in "$@"; do
    run_check "promtool check metrics $f" check_metrics "$f"
done

total=$((passed + failed))
if [[ $failed -eq 0 ]]; then
    say "OK: $passed/$total checks passed (${#rule_files[@]} rule files, ${#tests[@]} test files, ${#json_files[@]} dashboards, $# metrics dumps)"
else
    say "FAILED: $failed/$total checks failed: ${failures[*]}"
    exit 1
fi
