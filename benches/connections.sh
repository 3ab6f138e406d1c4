#!/usr/bin/env bash
# Held connections against metricsd, and against node_exporter (Debian's
# prometheus-node-exporter) in the same run: N clients on loopback
# (default 5000) connect and send nothing, half a request line, or one
# request and then sit on the kept-alive connection. While they hold on,
# a normal scrape is timed; then the script waits and counts how many of
# the held connections each server has closed after 15 s and after 70 s.
# Prints, per server: the scrape's status and time while held, connections
# closed by the server, and peak RSS (VmHWM).
#
#   benches/connections.sh [--clients N]
#
# metricsd runs with its defaults (256 connections, 10 s for headers, 60 s
# idle), host collector off so the numbers are the server's alone.
set -euo pipefail

clients=5000
while (($#)); do
  case $1 in
    --clients) clients=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh --bench
cargo build --release --locked --quiet -p metricsd --bin metricsd
ulimit -n $((clients * 2 + 1024))

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

printf '[host]\nenabled = false\n[server]\nrate_limit = { limit = 100000, window = "1m" }\n' >"$work/metricsd.toml"
target/release/metricsd --config "$work/metricsd.toml" --listen 127.0.0.1:19188 2>"$work/metricsd.log" &
pids+=($!)
metricsd_pid=$!
prometheus-node-exporter --web.listen-address=127.0.0.1:19100 \
  --collector.disable-defaults --collector.loadavg 2>"$work/node.log" &
pids+=($!)
node_pid=$!
sleep 2

hold() { # NAME PORT PID
  python3 - "$1" "$2" "$3" "$clients" <<'EOF'
import socket, sys, time, urllib.request
name, port, pid, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
held = []
for i in range(n):
    s = socket.socket()
    s.setblocking(True)
    try:
        s.connect(("127.0.0.1", port))
        if i % 3 == 1:
            s.sendall(b"GET /metr")
        elif i % 3 == 2:
            s.sendall(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
    except OSError:
        pass  # refused at once counts as closed
    s.setblocking(False)
    held.append(s)
t = time.monotonic()
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        status = r.status
        r.read()
except Exception as e:
    status = f"failed ({type(e).__name__})"
scrape_ms = (time.monotonic() - t) * 1000

def closed():
    gone = 0
    for s in held:
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    gone += 1
                    break
        except BlockingIOError:
            pass
        except OSError:
            gone += 1
    return gone

def hwm():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) // 1024
    return -1

time.sleep(15)
at15 = closed()
time.sleep(55)
at70 = closed()
print(f"{name:14} scrape while held: {status} in {scrape_ms:.0f} ms; "
      f"closed by the server: {at15}/{n} after 15 s, {at70}/{n} after 70 s; peak RSS {hwm()} MiB")
EOF
}

echo "held connections: $clients from loopback (1/3 silent, 1/3 half a request line, 1/3 idle after one request)"
hold metricsd 19188 "$metricsd_pid"
hold node_exporter 19100 "$node_pid"
