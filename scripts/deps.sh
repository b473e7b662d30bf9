#!/usr/bin/env bash
# Make sure the local Redis and PostgreSQL that Baton needs are installed,
# running, reachable on 127.0.0.1 without a password, and that the `baton`
# database exists. Idempotent: on a machine where all of that already holds it
# only checks.
#
# Env (all optional):
#   BATON_DB       database to create (default: baton)
#   DEPS_TIMEOUT   seconds to wait for the services to answer (default: 30)
set -euo pipefail

BATON_DB="${BATON_DB:-baton}"
DEPS_TIMEOUT="${DEPS_TIMEOUT:-30}"
PG_HOST=127.0.0.1
REDIS_HOST=127.0.0.1
REDIS_PORT=6379

say() { printf 'deps: %s\n' "$*"; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

# Root runs commands directly; anyone else goes through sudo when it exists.
if [[ $EUID -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    SUDO=()
fi
as_root() {
    if [[ $EUID -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
        die "need root (or sudo) to run: $*"
    fi
    "${SUDO[@]}" "$@"
}
# Run a command as the `postgres` OS user (peer auth on the local socket).
as_postgres() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    elif [[ "$(id -un)" == postgres ]]; then
        "$@"
    elif [[ ${#SUDO[@]} -gt 0 ]]; then
        sudo -u postgres "$@"
    else
        return 1
    fi
}

redis_ok() { [[ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }
pg_ok() { pg_isready -h "$PG_HOST" -q 2>/dev/null; }
psql_admin() { psql -h "$PG_HOST" -U postgres -d postgres -w -X -q -tA "$@"; }

# Newest installed PostgreSQL server version (directory under /usr/lib/postgresql).
pg_version() {
    local v
    # shellcheck disable=SC2012  # version directory names only
    v="$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n1)"
    [[ -n "$v" && -x "/usr/lib/postgresql/$v/bin/postgres" ]] && echo "$v"
}

# --- 1. install --------------------------------------------------------------
pkgs=()
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    pkgs+=(redis-server)
fi
if [[ -z "$(pg_version || true)" ]] || ! command -v pg_isready >/dev/null 2>&1 \
    || ! command -v psql >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null 2>&1; then
    pkgs+=(postgresql)
fi
if [[ ${#pkgs[@]} -gt 0 ]]; then
    say "installing ${pkgs[*]} (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
# promtool checks the services' Prometheus exposition in the tests. RUNLEVEL=1 keeps the
# package from starting a Prometheus server (which would take port 9090).
if ! command -v promtool >/dev/null 2>&1; then
    say "installing promtool (apt-get prometheus)"
    as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
        || { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
             && as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
fi

# --- 2. start ----------------------------------------------------------------
if redis_ok; then
    say "redis: running on $REDIS_HOST:$REDIS_PORT"
else
    say "redis: starting redis-server on $REDIS_HOST:$REDIS_PORT"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
        --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi

PG_VERSION="$(pg_version)" || die "no PostgreSQL server found under /usr/lib/postgresql"
if pg_ok; then
    say "postgresql: running on $PG_HOST:5432"
else
    if [[ ! -d "/etc/postgresql/$PG_VERSION/main" ]]; then
        say "postgresql: creating cluster $PG_VERSION/main"
        as_root pg_createcluster "$PG_VERSION" main >/dev/null
    fi
    say "postgresql: starting cluster $PG_VERSION/main"
    as_root pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main start \
        || say "postgresql: pg_ctlcluster start failed; waiting anyway"
fi

# --- 3. wait -----------------------------------------------------------------
deadline=$((SECONDS + DEPS_TIMEOUT))
until redis_ok && pg_ok; do
    if ((SECONDS >= deadline)); then
        redis_ok || printf 'deps: error: redis not answering on %s:%s (log: /var/log/redis/ci.log)\n' \
            "$REDIS_HOST" "$REDIS_PORT" >&2
        pg_ok || printf 'deps: error: postgresql not answering on %s:5432 (log: /var/log/postgresql/)\n' \
            "$PG_HOST" >&2
        die "services not ready after ${DEPS_TIMEOUT}s"
    fi
    sleep 0.5
done

# --- 4. passwordless access as `postgres` over 127.0.0.1 ------------------------
if ! psql_admin -c 'SELECT 1' >/dev/null 2>&1; then
    hba="$(as_postgres psql -X -tA -c 'SHOW hba_file' 2>/dev/null || true)"
    [[ -n "$hba" ]] || hba="/etc/postgresql/$PG_VERSION/main/pg_hba.conf"
    as_root test -f "$hba" || die "cannot find pg_hba.conf (looked at $hba)"
    say "postgresql: setting trust auth for local, 127.0.0.1/32 and ::1/128 in $hba"
    # First matching line wins, so prepend trust rules (once) ahead of the defaults.
    if ! as_root grep -q '^# baton: trust loopback' "$hba"; then
        tmp="$(mktemp)"
        {
            echo '# baton: trust loopback (added by scripts/deps.sh for local dev/CI)'
            echo 'local   all   all                  trust'
            echo 'host    all   all   127.0.0.1/32   trust'
            echo 'host    all   all   ::1/128        trust'
            as_root cat "$hba"
        } >"$tmp"
        as_root cp "$tmp" "$hba"
        rm -f "$tmp"
    fi
    as_root pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main reload
    for _ in $(seq 1 20); do
        psql_admin -c 'SELECT 1' >/dev/null 2>&1 && break
        sleep 0.5
    done
    psql_admin -c 'SELECT 1' >/dev/null 2>&1 \
        || die "still cannot connect as postgres@$PG_HOST without a password; check $hba"
fi

# --- 5. database ---------------------------------------------------------------
if [[ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$BATON_DB'")" == 1 ]]; then
    say "postgresql: database '$BATON_DB' exists"
else
    say "postgresql: creating database '$BATON_DB'"
    createdb -h "$PG_HOST" -U postgres -w "$BATON_DB"
fi

say "ready: DATABASE_URL=postgres://postgres@$PG_HOST:5432/$BATON_DB REDIS_URL=redis://$REDIS_HOST:$REDIS_PORT"
