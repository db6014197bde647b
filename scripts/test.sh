#!/usr/bin/env bash
# Runs every Perch test against a real Postgres.
#
# Postgres is found in this order:
#   1. DATABASE_URL, if set (any reachable server; tests create and drop
#      their own databases on it, so the role needs CREATEDB);
#   2. a server answering on 127.0.0.1:5432 as user postgres;
#   3. a throwaway cluster started with initdb/pg_ctl under target/test-pg
#      (as the unprivileged user "postgres" when run as root, since
#      PostgreSQL refuses to run as root), stopped when the tests end;
#   4. otherwise: a message saying what to install.
# PERCH_TEST_PG=throwaway forces the third path.
#
# Extra arguments go to `cargo test` (e.g. scripts/test.sh -p perch-oauth1).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'test.sh: %s\n' "$*" >&2; }

port_answers() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

find_pg_bin() { # program
  if command -v "$1" >/dev/null 2>&1; then command -v "$1"; return; fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$found" ] && echo "$found"
}

cleanup_cluster=""
cleanup() {
  if [ -n "$cleanup_cluster" ]; then
    say "stopping the throwaway cluster"
    eval "$cleanup_cluster" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

start_throwaway_cluster() {
  local initdb pg_ctl dir port run_as=()
  initdb=$(find_pg_bin initdb) || true
  pg_ctl=$(find_pg_bin pg_ctl) || true
  if [ -z "${initdb:-}" ] || [ -z "${pg_ctl:-}" ]; then
    say "no Postgres found: set DATABASE_URL, start a server on 127.0.0.1:5432,"
    say "or install the server (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql)."
    exit 2
  fi
  dir="$PWD/target/test-pg"
  port=55432
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
      say "running as root needs an unprivileged user 'postgres' to run the cluster (useradd --system postgres)"
      exit 2
    fi
    chown -R postgres: "$dir"
    run_as=(runuser -u postgres --)
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    say "initialising a throwaway cluster in target/test-pg"
    "${run_as[@]}" "$initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  "${run_as[@]}" "$pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >/dev/null
  cleanup_cluster="${run_as[*]} $pg_ctl -D $dir/data -m fast stop"
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

if [ "${PERCH_TEST_PG:-}" = throwaway ]; then
  # Forces the throwaway cluster, to check that path on a machine that has a server.
  unset DATABASE_URL
  start_throwaway_cluster
elif [ -n "${DATABASE_URL:-}" ]; then
  say "using DATABASE_URL"
elif port_answers 127.0.0.1 5432; then
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
  say "using the Postgres on 127.0.0.1:5432"
else
  start_throwaway_cluster
fi

# Third-party client conformance runs use Python's requests-oauthlib, and
# the API document is checked against the server with schemathesis, both in
# a project-local virtualenv so nothing global changes.
if [ -f tests/python/requirements.txt ]; then
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  .venv/bin/python -m pip install --quiet -r tests/python/requirements.txt
  export PERCH_TEST_PYTHON="$PWD/.venv/bin/python"
fi

# The real-browser tests drive the system Chromium with Playwright (its
# browser download is never used), installed into tests/browser/.
if [ -f tests/browser/package.json ]; then
  if ! command -v node >/dev/null 2>&1; then
    say "Node.js is needed for the browser tests (Debian/Ubuntu: apt-get install nodejs npm)"
    exit 2
  fi
  if [ ! -d tests/browser/node_modules/playwright-core ]; then
    (cd tests/browser && npm install --no-audit --no-fund --no-package-lock --silent)
  fi
fi

cargo test --workspace --locked "$@"
