#!/usr/bin/env bash
# metricsd against what users run today, in one run on one machine:
# prometheus-node-exporter + prometheus-postgres-exporter (Debian packages)
# serving the same host and the same PostgreSQL database.
#
#   benches/metricsd.sh [--count N]
#
# Starts the test PostgreSQL (scripts/test-services.sh start postgres),
# metricsd (release build: host + PostgreSQL with pg_stat_statements top 10),
# node_exporter and postgres_exporter (default collectors), then scrapes
# each N times (default 1000) one after another over a kept-alive
# connection, as Prometheus does. Prints, per side: scrape latency
# p50/p99/max, CPU time of the exporter processes per scrape, CPU time of the
# PostgreSQL server per scrape (the queries the exporter runs), peak RSS
# (VmHWM), and the size of one answer.
set -euo pipefail

count=1000
while (($#)); do
  case $1 in
    --count) count=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh --bench
scripts/test-services.sh start postgres >/dev/null
# shellcheck disable=SC1091
source target/test-services/env
cargo build --release --locked --quiet -p metricsd -p shipshape-benches --bin metricsd --bin scrape

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

pg_addr=${SHIPSHAPE_TEST_PG_URL#*@}; pg_addr=${pg_addr%%/*}
pg_password=${SHIPSHAPE_TEST_PG_URL#postgres://postgres:}; pg_password=${pg_password%%@*}
"$SHIPSHAPE_TEST_PG_BIN/psql" -X -q -d "$SHIPSHAPE_TEST_PG_URL" \
  -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null

cat >"$work/metricsd.toml" <<TOML
[server]
rate_limit = { limit = 100000, window = "1m" }
[[postgres]]
name = "main"
url = "postgres://postgres@$pg_addr/postgres?sslmode=verify-full&sslrootcert=$SHIPSHAPE_TEST_PG_CA"
password_env = "BENCH_PG_PASSWORD"
TOML

BENCH_PG_PASSWORD=$pg_password target/release/metricsd --config "$work/metricsd.toml" \
  --listen 127.0.0.1:19188 2>"$work/metricsd.log" &
pids+=($!); metricsd_pid=$!
prometheus-node-exporter --web.listen-address=127.0.0.1:19100 2>"$work/node.log" &
pids+=($!); node_pid=$!
DATA_SOURCE_NAME="postgresql://postgres:$pg_password@$pg_addr/postgres?sslmode=verify-full&sslrootcert=$SHIPSHAPE_TEST_PG_CA" \
  prometheus-postgres-exporter --web.listen-address=127.0.0.1:19187 2>"$work/pgexp.log" &
pids+=($!); pgexp_pid=$!

for url in http://127.0.0.1:19188/healthz http://127.0.0.1:19100/metrics http://127.0.0.1:19187/metrics; do
  for _ in $(seq 100); do curl -fsS -o /dev/null "$url" 2>/dev/null && break; sleep 0.1; done
done

ticks=$(getconf CLK_TCK)
# CPU ticks (user + system) of processes, their reaped children included.
cpu() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15+$16+$17}' "/proc/$p/stat"))); done; echo "$t"; }
# The PostgreSQL server: the postmaster (with reaped backends) and every live backend.
pg_cpu() {
  local pm; pm=$(head -1 "$(dirname "$SHIPSHAPE_TEST_PG_CA")/../data/postmaster.pid")
  # shellcheck disable=SC2046
  cpu "$pm" $(pgrep -P "$pm")
}
hwm() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

run() {  # name, pids..., -- urls...
  local name=$1; shift
  local procs=()
  while [[ $1 != -- ]]; do procs+=("$1"); shift; done; shift
  local before pg_before after pg_after out
  before=$(cpu "${procs[@]}"); pg_before=$(pg_cpu)
  out=$(target/release/scrape --count "$count" "$@")
  after=$(cpu "${procs[@]}"); pg_after=$(pg_cpu)
  local rss=0 p
  for p in "${procs[@]}"; do rss=$(awk -v a="$rss" -v b="$(hwm "$p")" 'BEGIN {print a + b}'); done
  echo "$out" | while read -r line; do echo "  $name: $line"; done
  awk -v n="$name" -v c=$((after - before)) -v pg=$((pg_after - pg_before)) -v t="$ticks" \
      -v k="$count" -v r="$rss" 'BEGIN {
    printf "  %s: exporter CPU %.2f ms/scrape, PostgreSQL CPU %.2f ms/scrape, peak RSS %.1f MiB\n",
      n, c * 1000 / t / k, pg * 1000 / t / k, r }'
}

echo "metricsd vs node_exporter + postgres_exporter, $count scrapes each, $(nproc) cores"
# Warm up (first connections, first queries), then measure.
target/release/scrape --count 5 http://127.0.0.1:19188/metrics http://127.0.0.1:19100/metrics \
  http://127.0.0.1:19187/metrics >/dev/null
run metricsd "$metricsd_pid" -- http://127.0.0.1:19188/metrics
run "node+postgres_exporter" "$node_pid" "$pgexp_pid" -- \
  http://127.0.0.1:19100/metrics http://127.0.0.1:19187/metrics
