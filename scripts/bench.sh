#!/usr/bin/env bash
# Perch benchmarks, side by side with the machine's own limit, in one
# invocation:
#   1. pgbench -i -s 10 on a dedicated database, then pgbench -S and
#      pgbench -N for 15 s each (-c = the Perch runs' concurrency, -j 2);
#   2. release builds of perch and perch-bench;
#   3. the Perch scenarios (each starts its own `perch serve` process on a
#      fresh database `perch_bench`): logins (with 1M linked accounts,
#      then paced at half the rate reached), oidc-logins (the same through
#      the tenant's OpenID Provider), accounts-read (1M), proxy (signed
#      calls through the proxy for 100 linked users), logins and
#      oidc-logins again with --separate-provider (the provider-URL mode:
#      the sandbox in its own perch serve, the broker's cost alone),
#      accounts-list (10k, 1M; 10M with TEN_MILLION=1), sweep (1M expired
#      logins), sign (criterion), the limiter's cost: logins with
#      every budget off, then at the shipped budgets (users from 2000
#      addresses of their own over 32 apps, behind a trusted proxy), and
#      a subscribed webhook endpoint's cost: logins without, then with
#      one endpoint subscribed to the login events, interleaved for
#      WEBHOOK_ROUNDS rounds (off, on, off, on, ...);
#   4. every figure of the targets table, as a ratio to the matching
#      pgbench figure where there is one.
#
# Environment: DATABASE_URL (any database on the server; default
# postgres://postgres@127.0.0.1:5432/postgres), CONCURRENCY (8), DURATION
# (measured seconds per Perch run, 20), TEN_MILLION (0), WEBHOOK_ROUNDS
# (2), OUT (results directory), CARGO_TARGET_DIR (target/bench).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/bench}"
# Absolute, because criterion resolves it from the benchmark's own directory.
mkdir -p "$CARGO_TARGET_DIR"
CARGO_TARGET_DIR="$(cd "$CARGO_TARGET_DIR" && pwd)"
export CARGO_TARGET_DIR
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
CONCURRENCY="${CONCURRENCY:-8}"
DURATION="${DURATION:-20}"
TEN_MILLION="${TEN_MILLION:-0}"
WEBHOOK_ROUNDS="${WEBHOOK_ROUNDS:-2}"
OUT="${OUT:-$CARGO_TARGET_DIR/bench-results}"
PGBENCH_DB=perch_pgbench
mkdir -p "$OUT"

PGBENCH="$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -n1 || true)"
[ -x "$PGBENCH" ] || { echo "bench.sh: pgbench not found" >&2; exit 1; }
command -v jq >/dev/null || { echo "bench.sh: jq is required" >&2; exit 1; }
command -v psql >/dev/null || { echo "bench.sh: psql is required" >&2; exit 1; }

# The server part of DATABASE_URL, for psql and pgbench.
server_url() { printf '%s/%s' "${DATABASE_URL%/*}" "$1"; }

log() { printf '\n== %s\n' "$*"; }

log "machine"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB total"}')"
  echo "postgres: $(psql "$DATABASE_URL" -tAc 'SELECT version()')"
  for setting in shared_buffers max_connections synchronous_commit fsync; do
    echo "$setting: $(psql "$DATABASE_URL" -tAc "SHOW $setting")"
  done
  echo "rustc: $(rustc --version)"
} | tee "$OUT/machine.txt"

log "building perch and perch-bench (release, $CARGO_TARGET_DIR)"
cargo build --release -p perch -p perch-bench
PERCH_BIN="$CARGO_TARGET_DIR/release/perch"
BENCH="$CARGO_TARGET_DIR/release/perch-bench"

log "pgbench: -i -s 10, then -S and -N for 15 s each (-c $CONCURRENCY -j 2)"
psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $PGBENCH_DB WITH (FORCE)"
psql "$DATABASE_URL" -qc "CREATE DATABASE $PGBENCH_DB"
"$PGBENCH" -i -s 10 -q "$(server_url $PGBENCH_DB)" 2>&1 | tail -n1
"$PGBENCH" -S -c "$CONCURRENCY" -j 2 -T 15 "$(server_url $PGBENCH_DB)" | tee "$OUT/pgbench-S.txt"
"$PGBENCH" -N -c "$CONCURRENCY" -j 2 -T 15 "$(server_url $PGBENCH_DB)" | tee "$OUT/pgbench-N.txt"
tps() { sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$1"; }
TPS_S="$(tps "$OUT/pgbench-S.txt")"
TPS_N="$(tps "$OUT/pgbench-N.txt")"
psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $PGBENCH_DB WITH (FORCE)"

run() {
  local name="$1"; shift
  log "perch-bench $name $*"
  "$BENCH" --perch-bin "$PERCH_BIN" --json "$OUT/$name.json" "$@"
}

run logins logins --concurrency "$CONCURRENCY" --duration "$DURATION" --users 2000 \
  --seed-accounts 1000000
run oidc-logins oidc-logins --concurrency "$CONCURRENCY" --duration "$DURATION" --users 2000 \
  --seed-accounts 1000000
run accounts-read accounts-read --concurrency "$CONCURRENCY" --duration "$DURATION" \
  --accounts 1000000
run proxy proxy --concurrency "$CONCURRENCY" --duration "$DURATION" --users 100
# The provider-URL mode: the sandbox in a perch serve of its own, so CPU,
# commits and RSS are the broker's alone.
run logins-separate --separate-provider logins --concurrency "$CONCURRENCY" \
  --duration "$DURATION" --users 2000
run oidc-logins-separate --separate-provider oidc-logins --concurrency "$CONCURRENCY" \
  --duration "$DURATION" --users 2000
LIST_FLAGS=()
[ "$TEN_MILLION" = 1 ] && LIST_FLAGS+=(--ten-million)
run accounts-list accounts-list --concurrency "$CONCURRENCY" --duration "$DURATION" \
  --sizes 10000,1000000 "${LIST_FLAGS[@]}"
run sweep sweep --concurrency "$CONCURRENCY" --duration "$DURATION" --users 2000 --rows 1000000
run sign sign
run logins-budgets-off logins --concurrency "$CONCURRENCY" --duration "$DURATION" --users 2000 \
  --apps 32 --budgets off
run logins-budgets-default logins --concurrency "$CONCURRENCY" --duration "$DURATION" --users 2000 \
  --apps 32 --budgets default
for round in $(seq 1 "$WEBHOOK_ROUNDS"); do
  run "logins-webhook-off-$round" logins --concurrency "$CONCURRENCY" --duration "$DURATION" \
    --users 2000
  run "logins-webhook-on-$round" logins --concurrency "$CONCURRENCY" --duration "$DURATION" \
    --users 2000 --webhook-endpoint
done

log "results (concurrency $CONCURRENCY; pgbench -S $TPS_S tps, -N $TPS_N tps)"
j() { jq -r "$2" "$OUT/$1.json"; }
LOGINS="$(j logins '.max.logins_per_sec')"
HALF_P99="$(j logins '.half_rate.worst_own_p99_ms')"
HALF_OWN="$(j logins '.half_rate.perch_own | to_entries | map("\(.key) \(.value.p99_ms)") | join(", ")')"
HALF_SERVER="$(j logins '.half_rate.perch_own_server_side | to_entries | map("\(.key) \(.value.p99_ms)") | join(", ")')"
COMMITS="$(j logins '.commits_per_login')"
HALF_HOPS="$(j logins '.half_rate.hops | to_entries | map("\(.key) \(.value.p99_ms)") | join(", ")')"
READS="$(j accounts-read '.reads.per_sec')"
FLOOR="$(j accounts-read '.http_floor.per_sec')"
RSS_MIB="$(j logins '.perch_peak_rss_kib / 1024 * 10 | round / 10')"
VERIFY="$(j sign '.verify_over_raw')"
VERIFY_FULL="$(j sign '.collect_and_verify_over_raw')"
SWEEP="$(j sweep '.result.login_p99_ratio')"
verdict() { if [ "$1" = 1 ]; then echo met; else echo MISSED; fi; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
cmp() { awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN { r = (op == ">=") ? a >= b : a <= b; print r }'; }

{
  printf '%-48s %-14s %-12s %-10s %s\n' figure value ratio target verdict
  r="$(ratio "$LOGINS" "$TPS_N")"
  printf '%-48s %-14s %-12s %-10s %s\n' "completed logins/s vs pgbench -N tps" "$LOGINS" "$r" ">= 0.25" "$(verdict "$(cmp "$r" ">=" 0.25)")"
  echo "    commits per login (Perch and sandbox; pgbench -N: 1): $COMMITS"
  printf '%-48s %-14s %-12s %-10s %s\n' "Perch's own worst hop p99, half rate (ms)" "$HALF_P99" "-" "<= 5" "$(verdict "$(cmp "$HALF_P99" "<=" 5)")"
  echo "    Perch's own p99 per hop (ms): $HALF_OWN"
  echo "    the same as Perch measured it (Server-Timing), p99 (ms): $HALF_SERVER"
  echo "    whole hops as the client saw them, p99 (ms): $HALF_HOPS"
  r="$(ratio "$READS" "$TPS_S")"
  printf '%-48s %-14s %-12s %-10s %s\n' "account reads/s vs pgbench -S tps" "$READS" "$r" ">= 0.5" "$(verdict "$(cmp "$r" ">=" 0.5)")"
  r="$(ratio "$FLOOR" "$TPS_S")"
  printf '%-48s %-14s %-12s %-10s %s\n' "  (HTTP floor: GET /healthz/s vs pgbench -S)" "$FLOOR" "$r" "-" "-"
  # The broker alone (the provider in its own process).
  for scenario in logins-separate oidc-logins-separate; do
    echo "  $scenario (provider apart): $(j "$scenario" '"\(.max.logins_per_sec) logins/s, own p99 per hop at half rate (ms) \(.half_rate.perch_own | to_entries | map("\(.key) \(.value.p99_ms)") | join(", ")), peak RSS \(.perch_peak_rss_kib / 1024 * 10 | round / 10) MiB"')"
    c="$(j "$scenario" '.commits_per_login')"
    printf '%-48s %-14s %-12s %-10s %s\n' "  broker commits per login ($scenario)" "$c" "-" "<= 4" "$(verdict "$(cmp "$c" "<=" 4)")"
    c="$(j "$scenario" '.cpu_ms_per_login')"
    printf '%-48s %-14s %-12s %-10s %s\n' "  broker CPU ms per login ($scenario)" "$c" "-" "<= 0.85" "$(verdict "$(cmp "$c" "<=" 0.85)")"
  done
  # Signed calls through the proxy: no target yet; Perch's own share.
  printf '%-48s %-14s %-12s %-10s %s\n' "proxied calls/s (the sandbox in-process)" "$(j proxy '.calls.per_sec')" "-" "-" "-"
  echo "    call p99 $(j proxy '.calls.latency.p99_ms') ms, Perch's own p99 $(j proxy '.perch_own.p99_ms') ms, CPU $(j proxy '.perch_cpu_ms_per_call') ms per call (Perch and sandbox)"
  for size in $(jq -r '.sizes[1:][] | .accounts' "$OUT/accounts-list.json"); do
    r="$(jq -r ".sizes[] | select(.accounts == $size) | .p99_vs_first" "$OUT/accounts-list.json")"
    p="$(jq -r ".sizes[] | select(.accounts == $size) | .latency.p99_ms" "$OUT/accounts-list.json")"
    printf '%-48s %-14s %-12s %-10s %s\n' "account-list p99 at $size vs at 10k" "$p ms" "$r" "<= 1.5" "$(verdict "$(cmp "$r" "<=" 1.5)")"
  done
  printf '%-48s %-14s %-12s %-10s %s\n' "login p99 during 1M-row sweep vs without" "-" "$SWEEP" "<= 2" "$(verdict "$(cmp "$SWEEP" "<=" 2)")"
  printf '%-48s %-14s %-12s %-10s %s\n' "perch peak RSS, login load, 1M accounts (MiB)" "$RSS_MIB" "-" "<= 64" "$(verdict "$(cmp "$RSS_MIB" "<=" 64)")"
  printf '%-48s %-14s %-12s %-10s %s\n' "verify() vs raw HMAC-SHA1" "-" "$VERIFY" "<= 2" "$(verdict "$(cmp "$VERIFY" "<=" 2)")"
  # Parsing the request is not part of the target (see BENCHMARKS.md);
  # the whole server path is shown beside it for information.
  printf '%-48s %-14s %-12s %-10s %s\n' "  (collect + verify vs raw, for information)" "-" "$VERIFY_FULL" "-" "-"
  # The limiter's cost: the shipped budgets against every budget off.
  OFF_RATE="$(j logins-budgets-off '.max.logins_per_sec')"
  ON_RATE="$(j logins-budgets-default '.max.logins_per_sec')"
  r="$(ratio "$ON_RATE" "$OFF_RATE")"
  printf '%-48s %-14s %-12s %-10s %s\n' "logins/s, default budgets vs off" "$ON_RATE" "$r" ">= 0.9" "$(verdict "$(cmp "$r" ">=" 0.9)")"
  for hop in link callback exchange; do
    off="$(j logins-budgets-off ".half_rate.perch_own.$hop.p99_ms")"
    on="$(j logins-budgets-default ".half_rate.perch_own.$hop.p99_ms")"
    r="$(ratio "$on" "$off")"
    printf '%-48s %-14s %-12s %-10s %s\n' "own p99 $hop at half rate, default vs off" "$on ms" "$r" "<= 1.1" "$(verdict "$(cmp "$r" "<=" 1.1)")"
  done
  # OpenID Connect logins, against the native logins' targets.
  OIDC="$(j oidc-logins '.max.logins_per_sec')"
  r="$(ratio "$OIDC" "$TPS_N")"
  printf '%-48s %-14s %-12s %-10s %s\n' "OIDC logins/s vs pgbench -N tps" "$OIDC" "$r" ">= 0.25" "$(verdict "$(cmp "$r" ">=" 0.25)")"
  r="$(ratio "$OIDC" "$LOGINS")"
  printf '%-48s %-14s %-12s %-10s %s\n' "  (OIDC logins/s vs native logins/s)" "-" "$r" "-" "-"
  OIDC_P99="$(j oidc-logins '.half_rate.worst_own_p99_ms')"
  printf '%-48s %-14s %-12s %-10s %s\n' "OIDC, Perch's own worst hop p99, half rate (ms)" "$OIDC_P99" "-" "<= 5" "$(verdict "$(cmp "$OIDC_P99" "<=" 5)")"
  echo "    Perch's own p99 per hop (ms): $(j oidc-logins '.half_rate.perch_own | to_entries | map("\(.key) \(.value.p99_ms)") | join(", ")')"
  echo "    the same as Perch measured it (Server-Timing), p99 (ms): $(j oidc-logins '.half_rate.perch_own_server_side | to_entries | map("\(.key) \(.value.p99_ms)") | join(", ")')"
  echo "    commits per login (Perch and sandbox): $(j oidc-logins '.commits_per_login')"
  # One subscribed webhook endpoint against none: the means of the
  # interleaved rounds.
  mean() { jq -s "map($2) | add / length" $(for round in $(seq 1 "$WEBHOOK_ROUNDS"); do echo "$OUT/logins-webhook-$1-$round.json"; done); }
  OFF_RATE="$(mean off '.max.logins_per_sec')"
  ON_RATE="$(mean on '.max.logins_per_sec')"
  r="$(ratio "$ON_RATE" "$OFF_RATE")"
  printf '%-48s %-14s %-12s %-10s %s\n' "logins/s, one webhook endpoint vs none (mean)" "$ON_RATE" "$r" ">= 0.9" "$(verdict "$(cmp "$r" ">=" 0.9)")"
  for hop in link callback exchange; do
    off="$(mean off ".half_rate.perch_own.$hop.p99_ms")"
    on="$(mean on ".half_rate.perch_own.$hop.p99_ms")"
    printf '%-48s %-14s %-12s %-10s %s\n' "  (own p99 $hop, half rate, webhook vs none)" "$on ms" "$(ratio "$on" "$off")" "-" "-"
  done
  for round in $(seq 1 "$WEBHOOK_ROUNDS"); do
    echo "    round $round: off $(j "logins-webhook-off-$round" '.max.logins_per_sec') logins/s, on $(j "logins-webhook-on-$round" '.max.logins_per_sec') logins/s; $(j "logins-webhook-on-$round" '.webhook | "deliveries \(.received_per_sec_during_max)/s during the flat-out run, \(.events) events, \(.undelivered) undelivered after the drain (drained in \(.drain_secs // "-") s), Perch queue due \(.perch.queue_due)"')"
  done
} | tee "$OUT/summary.txt"
echo "raw results: $OUT"
