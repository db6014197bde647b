#!/usr/bin/env bash
# Runs every Perch test against a real Postgres.
#
# The test harness finds Postgres by itself (perch_tests::admin_url):
# DATABASE_URL if set, else the server on 127.0.0.1:5432, else a throwaway
# cluster it starts under target/test-pg and shares between test binaries;
# PERCH_TEST_PG=throwaway forces that one. This script installs the
# third-party clients the tests drive, runs the tests, and stops the
# throwaway cluster at the end if one is running.
#
# Extra arguments go to `cargo test` (e.g. scripts/test.sh -p perch-oauth1).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'test.sh: %s\n' "$*" >&2; }

stop_throwaway_cluster() {
  cargo run --locked --quiet -p perch-tests --bin perch-test-pg -- stop || true
}
trap stop_throwaway_cluster EXIT

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
  # Installs again when any package the manifest names is missing, so a
  # package added to package.json reaches checkouts that installed before.
  for package in $(node -e 'console.log(Object.keys(require("./tests/browser/package.json").dependencies).join(" "))'); do
    if [ ! -d "tests/browser/node_modules/$package" ]; then
      (cd tests/browser && npm install --no-audit --no-fund --no-package-lock --silent)
      break
    fi
  done
fi

cargo test --workspace --locked "$@"
