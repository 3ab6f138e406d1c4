#!/usr/bin/env bash
# metricsd's Docker collector against `docker stats --no-stream`, in one run
# on one machine, for the same N running containers (default 50).
#
#   benches/docker.sh [--containers N] [--scrapes K]
#
# Starts N busybox containers (scripts/test-services.sh builds the image),
# then: metricsd (release build, only the Docker collector) scraped K times
# (default 20) one after another — the scrape latency is one whole Docker
# collection — and `docker stats --no-stream` run K/4 times. Prints wall
# time per collection, CPU time of the client (metricsd, or the docker CLI)
# and of the engine (dockerd + containerd) per collection.
set -euo pipefail

n=50 k=20
while (($#)); do
  case $1 in
    --containers) n=$2; shift 2 ;;
    --scrapes) k=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh --bench
scripts/test-services.sh start docker >/dev/null
cargo build --release --locked --quiet -p metricsd -p shipshape-benches --bin metricsd --bin scrape

image=shipshape-test/busybox:latest
work=$(mktemp -d)
metricsd_pid=
cleanup() {
  [[ -n $metricsd_pid ]] && kill "$metricsd_pid" 2>/dev/null
  docker ps -aq --filter label=shipshape-bench=1 | xargs -r docker rm -f >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "starting $n containers" >&2
for i in $(seq "$n"); do
  docker run -d --label shipshape-bench=1 --name "shipshape-bench-$i" --memory 64m "$image" sleep 3600 >/dev/null
done

cat >"$work/metricsd.toml" <<TOML
[server]
rate_limit = { limit = 100000, window = "1m" }
[host]
enabled = false
[docker]
TOML
target/release/metricsd --config "$work/metricsd.toml" --listen 127.0.0.1:19189 2>"$work/metricsd.log" &
metricsd_pid=$!
for _ in $(seq 100); do curl -fsS -o /dev/null http://127.0.0.1:19189/healthz 2>/dev/null && break; sleep 0.1; done

ticks=$(getconf CLK_TCK)
cpu() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15+$16+$17}' "/proc/$p/stat"))); done; echo "$t"; }
engine_pids=$(pgrep -x dockerd; pgrep -x containerd || true)

# Warm up: connection, API negotiation, first CPU samples.
target/release/scrape --count 2 http://127.0.0.1:19189/metrics >/dev/null
running=$(curl -fsS http://127.0.0.1:19189/metrics | awk -F' ' '/^shipshape_containers\{state="running"\}/ {print $2}')

c0=$(cpu "$metricsd_pid"); e0=$(cpu $engine_pids)
out=$(target/release/scrape --count "$k" http://127.0.0.1:19189/metrics)
c1=$(cpu "$metricsd_pid"); e1=$(cpu $engine_pids)

runs=$(( k / 4 > 0 ? k / 4 : 1 ))
s0=$(date +%s.%N); e2=$(cpu $engine_pids)
cli_ticks=0
for _ in $(seq "$runs"); do
  /usr/bin/time -f "%U %S" -o "$work/time" docker stats --no-stream >/dev/null
  cli_ticks=$(awk -v t="$cli_ticks" -v hz="$ticks" '{print t + ($1 + $2) * hz}' "$work/time")
done
s1=$(date +%s.%N); e3=$(cpu $engine_pids)

echo "Docker collection, $running running containers, $(nproc) cores"
echo "  metricsd scrape: $out"
awk -v c=$((c1 - c0)) -v e=$((e1 - e0)) -v k="$k" -v hz="$ticks" 'BEGIN {
  printf "  metricsd: client CPU %.1f ms, engine CPU %.1f ms per collection\n", c*1000/hz/k, e*1000/hz/k }'
awk -v c="$cli_ticks" -v e=$((e3 - e2)) -v k="$runs" -v hz="$ticks" -v w0="$s0" -v w1="$s1" 'BEGIN {
  printf "  docker stats --no-stream: wall %.0f ms, client CPU %.1f ms, engine CPU %.1f ms per run\n",
    (w1-w0)*1000/k, c*1000/hz/k, e*1000/hz/k }'
