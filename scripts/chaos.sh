#!/usr/bin/env bash
# The chaos soak: two `perch serve` replicas behind HAProxy on a Postgres
# cluster of the soak's own, virtual users walking complete logins through
# the sandbox for PERCH_CHAOS_MINUTES (10) minutes, and a fault every
# minute in turn (Postgres restarted, Postgres crashed, a replica killed
# with SIGKILL, a rolling restart, the other replica killed). Every hop's
# outcome is counted per minute; afterwards every login whose exchange
# answered 200 is checked in the database. The table is printed and
# written to target/chaos/results.md (or $PERCH_CHAOS_OUT).
#
# Needs: the PostgreSQL server programs (initdb, pg_ctl) and haproxy.
set -euo pipefail
cd "$(dirname "$0")/.."

mkdir -p target/chaos
export PERCH_CHAOS_OUT="${PERCH_CHAOS_OUT:-$PWD/target/chaos/results.md}"
export PERCH_CHAOS_MINUTES="${PERCH_CHAOS_MINUTES:-10}"
cargo test --locked -p perch-tests --test it faults::chaos_soak -- --ignored --nocapture
echo "chaos.sh: results in $PERCH_CHAOS_OUT" >&2
