#!/usr/bin/env bash
# A propagation check across 5 resolvers: `dnsctl check` (every resolver
# asked at once) against what users script today, `dig` asking one
# resolver after another, in one run on one machine.
#
#   benches/dns.sh [--timeout SECONDS] [--runs K]
#
# The 5 resolvers: Knot and PowerDNS from scripts/test-services.sh (Knot
# answers the name, PowerDNS refuses it: both answer at once) and 3 UDP
# sockets that never answer — resolvers that are down, the case a
# propagation check exists for. Each tool waits up to the timeout
# (default 2 s, one try) per resolver. Prints the median wall time of K
# runs (default 5).
set -euo pipefail

timeout=2 runs=5
while (($#)); do
  case $1 in
    --timeout) timeout=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh
scripts/test-services.sh start dns >/dev/null
cargo build --release --locked --quiet -p dnsctl
# shellcheck disable=SC1091
source target/test-services/env

# Three resolvers that are down: bound, never answering.
work=$(mktemp -d)
python3 - "$work/ports" <<'PY' &
import socket, sys, time
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(" ".join(str(s.getsockname()[1]) for s in socks) + "\n")
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(3600)
PY
silent_pid=$!
trap 'kill $silent_pid 2>/dev/null; rm -rf "$work"' EXIT
until [[ -s $work/ports ]]; do sleep 0.05; done
read -r -a ports <"$work/ports"
knot=$SHIPSHAPE_TEST_KNOT_DNS pdns=$SHIPSHAPE_TEST_PDNS_DNS
resolvers=("$knot" "$pdns")
for p in "${ports[@]}"; do resolvers+=("127.0.0.1:$p"); done
name=ns1.${SHIPSHAPE_TEST_KNOT_ZONES%% *}

median_ms() { # command... -> median wall ms over $runs runs
  local times=() start end
  for ((i = 0; i < runs; i++)); do
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    end=$(date +%s%N)
    times+=($(((end - start) / 1000000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p"
}

dnsctl_check() {
  local args=()
  for r in "${resolvers[@]}"; do args+=(--resolver "$r"); done
  target/release/dnsctl check "$name" --expect 127.0.0.1 --timeout "${timeout}s" "${args[@]}"
}
dig_serial() {
  for r in "${resolvers[@]}"; do
    dig +time="$timeout" +tries=1 +short -p "${r##*:}" "@${r%:*}" "$name" A
  done
}

echo "5 resolvers (2 answering, 3 down), timeout ${timeout}s, median of $runs runs:"
printf '| tool | wall |\n|---|---|\n'
printf '| dnsctl check (concurrent) | %s ms |\n' "$(median_ms dnsctl_check)"
printf '| dig, one resolver after another | %s ms |\n' "$(median_ms dig_serial)"
