#!/usr/bin/env bash
# Installs what Shipshape's tests (and, with --bench, its comparison
# benchmarks) need, reusing whatever is already installed. Safe to re-run.
#
#   scripts/install-deps.sh          # test tools: git (the exclude reference), age, zstd, tar, mkfifo, setpriv, curl, openssl,
#                                    # PostgreSQL (server and client tools), Prometheus and
#                                    # promtool, busybox-static, PowerDNS (sqlite backend), Knot DNS,
#                                    # sqlite3, dig, cargo-fuzz
#   scripts/install-deps.sh --bench  # plus restic, gzip, GNU time, prometheus-node-exporter,
#                                    # prometheus-postgres-exporter, pgBackRest, Barman
set -euo pipefail

bench=false
[[ "${1:-}" == "--bench" ]] && bench=true

# command -> Debian package
declare -A want=(
  [git]=git [age]=age [age-keygen]=age [zstd]=zstd [tar]=tar [mkfifo]=coreutils [setpriv]=util-linux [curl]=curl
)
# The PostgreSQL server and client tools (not on PATH in Debian's layout).
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || want+=([/usr/lib/postgresql/x/bin/pg_ctl]=postgresql)
want+=([openssl]=openssl)
# Prometheus and promtool: metricsd's output is checked and scraped by the real thing.
want+=([prometheus]=prometheus [promtool]=prometheus)
# DNS: PowerDNS Authoritative (sqlite backend, HTTP API) and Knot DNS, the
# servers the DNS tests manage records on; dig to see when they are up.
want+=([pdns_server]=pdns-server [/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql]=pdns-backend-sqlite3
       [knotd]=knot [sqlite3]=sqlite3 [dig]=bind9-dnsutils)
# The C ABI's tests: a C compiler, valgrind, Python for the ctypes example.
want+=([cc]=gcc [valgrind]=valgrind [python3]=python3)
# The Docker tests' image is made from Debian's static busybox (nothing can be pulled).
want+=([busybox]=busybox-static)
# The PostgreSQL-in-a-container tests' image is a Debian root file system.
want+=([debootstrap]=debootstrap)
if $bench; then
  want+=([restic]=restic [openssl]=openssl [gzip]=gzip [/usr/bin/time]=time)
  # The exporters metricsd is measured against.
  want+=([prometheus-node-exporter]=prometheus-node-exporter
         [prometheus-postgres-exporter]=prometheus-postgres-exporter)
  # The WAL archivers and base backup tools backupctl's PITR is measured against.
  want+=([pgbackrest]=pgbackrest [barman-wal-archive]=barman-cli [barman]=barman
         [barman-cloud-wal-archive]=barman-cli-cloud [/usr/sbin/sshd]=openssh-server)
fi

missing=()
for cmd in "${!want[@]}"; do
  # A path stands for a file the package installs; a word for a command.
  if [[ $cmd == /* ]]; then [[ -e $cmd ]] && continue; else command -v "$cmd" >/dev/null 2>&1 && continue; fi
  missing+=("${want[$cmd]}")
done

if ((${#missing[@]})); then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  echo "installing Debian packages: $pkgs" >&2
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # Keep apt from starting services where a package ships an init script.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
  fi
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  $sudo apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install --locked --quiet cargo-fuzz
fi
