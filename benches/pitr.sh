#!/usr/bin/env bash
# Point-in-time recovery, side by side in one run, on a PostgreSQL 15
# cluster of its own under pgbench load:
#
#   1. archiving one 16 MiB WAL segment (real segments written by pgbench):
#      `backupctl wal-push` against pgBackRest `archive-push` (zstd -3,
#      AES) into local repositories, against Barman's `barman-wal-archive`
#      (ssh to a Barman host on this machine: `barman put-wal`, its CPU
#      counted too), and against `barman-cloud-wal-archive` (gzip) into
#      Garage (S3) with `wal-push` to the same bucket: wall time, CPU and
#      peak RSS per segment;
#   2. archive lag under `pgbench -c 8`: how many segments the archiver
#      trails the server by, sampled every 0.5 s, with wal-push and with
#      pgBackRest's archive-push, sync and async;
#   3. a physical base backup: `backupctl backup --physical` against
#      `pg_basebackup -Ft -D - | zstd -3 -T0 | age` and `pgbackrest backup`:
#      wall time and peak RSS.
#
#   benches/pitr.sh                 # 32 segments, pgbench scale 50 (~750 MB)
#   benches/pitr.sh 64 100          # more segments, a bigger database
#
# Needs scripts/install-deps.sh --bench (pgBackRest, Barman and its cloud
# tools, an ssh server) and, for the S3 rows, Garage:
# scripts/test-services.sh start garage. The Barman host is this machine:
# an sshd of the script's own on 127.0.0.1:2222 lets the postgres user in
# as barman (whose locked password is set to `*` so key logins work).
set -euo pipefail
cd "$(dirname "$0")/.."
segments=${1:-32}
scale=${2:-50}
lag_seconds=${LAG_SECONDS:-30}
port=56201

cargo build --release --quiet -p backupctl
bc=$PWD/target/release/backupctl
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d /tmp/shipshape-pitr-bench.XXXXXX)
chmod 755 "$work"
# The server's user runs the server and the archivers (PostgreSQL runs
# archive_command so).
as_pg_prefix=(); [[ $(id -u) -eq 0 ]] && as_pg_prefix=(runuser -u postgres --)
as_pg() { "${as_pg_prefix[@]}" "$@"; }
psql_() { "$pgbin/psql" -h "$work" -p $port -U postgres -d postgres -XqAt -c "$1"; }
stop_pg() { as_pg "$pgbin/pg_ctl" -D "$work/data" -m fast -w stop >/dev/null 2>&1 || true; }
cleanup() {
  stop_pg
  [[ -f $work/sshd.pid ]] && kill "$(cat "$work/sshd.pid")" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$bc" keygen -o "$work/id.txt" >"$work/recipient" 2>/dev/null
recipient=$(cat "$work/recipient")
mkdir -p "$work/segments" "$work/pgbr-repo" "$work/pgbr-spool" "$work/pgbr-log" "$work/pgbr-lock"
"$bc" init --repo "$work/repo-push" >/dev/null
"$bc" init --repo "$work/repo-base" >/dev/null
[[ $(id -u) -eq 0 ]] && chown -R postgres:postgres "$work"

as_pg "$pgbin/initdb" -D "$work/data" -U postgres --auth=trust -N -E UTF8 --locale=C.UTF-8 >/dev/null
cat >>"$work/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$work'
port = $port
wal_level = replica
archive_mode = on
archive_command = 'cp %p $work/segments/%f'
max_wal_size = 4GB
CONF
cat >"$work/pgbackrest.conf" <<CONF
[global]
repo1-path=$work/pgbr-repo
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=shipshape-bench
compress-type=zst
compress-level=3
log-level-console=warn
log-level-file=off
log-path=$work/pgbr-log
lock-path=$work/pgbr-lock
spool-path=$work/pgbr-spool
start-fast=y
[bench]
pg1-path=$work/data
pg1-socket-path=$work
pg1-port=$port
pg1-user=postgres
CONF
chown postgres:postgres "$work/pgbackrest.conf" 2>/dev/null || true
pgbr() { as_pg pgbackrest --config="$work/pgbackrest.conf" --stanza=bench "$@"; }
set_archive() {
  psql_ "ALTER SYSTEM SET archive_command = '$1'" >/dev/null
  psql_ "SELECT pg_reload_conf()" >/dev/null
}
as_pg "$pgbin/pg_ctl" -D "$work/data" -l "$work/server.log" -w start >/dev/null
echo "# PITR benchmark: PostgreSQL $(psql_ 'SHOW server_version'), $(nproc) CPUs, $(date -u +%FT%TZ)"
echo "# pgbench scale $scale; backupctl $("$bc" --version | awk '{print $2}'), $(pgbackrest version), barman-cloud-wal-archive $(barman-cloud-wal-archive --version 2>&1 | awk '{print $2}')"
as_pg "$pgbin/pgbench" -h "$work" -p $port -U postgres -i -q -s "$scale" postgres >/dev/null 2>&1
pgbr stanza-create >/dev/null

# Real segments: pgbench writes until enough are archived by `cp`.
until (( $(ls "$work/segments" | grep -c '^[0-9A-F]\{24\}$') >= segments )); do
  as_pg "$pgbin/pgbench" -h "$work" -p $port -U postgres -c 4 -T 5 -n postgres >/dev/null 2>&1
  psql_ "SELECT pg_switch_wal()" >/dev/null
  sleep 1
done
mapfile -t segs < <(ls "$work/segments" | grep '^[0-9A-F]\{24\}$' | head -n "$segments")

# Per-segment cost: /usr/bin/time around every push, one tool after the other.
summary() { # name file: lines "wall user sys maxrss_kb"
  python3 - "$1" "$2" "$segments" <<'PY'
import statistics, sys
name, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [list(map(float, l.split())) for l in open(path) if l.strip() and not l.startswith("Command")]
if not rows:
    print(f"| {name} | 0/{n} | failed | | |"); sys.exit()
wall = [r[0] for r in rows]; cpu = [r[1] + r[2] for r in rows]; rss = [r[3] / 1024 for r in rows]
f = lambda xs: f"{statistics.median(xs)*1000:.0f} ms ({min(xs)*1000:.0f}-{max(xs)*1000:.0f})"
print(f"| {name} | {len(rows)}/{n} | {f(wall)} | {f(cpu)} | {max(rss):.1f} MiB |")
PY
}
push_each() { # name command-prefix...
  local name=$1; shift
  : >"$work/times"
  [[ $(id -u) -eq 0 ]] && chown postgres "$work/times"
  for s in "${segs[@]}"; do
    "${as_pg_prefix[@]}" /usr/bin/time -f '%e %U %S %M' -a -o "$work/times" "$@" "$work/segments/$s" >/dev/null 2>"$work/err" \
      || { echo "$name failed on $s: $(tail -3 "$work/err")" >&2; }
  done
  summary "$name" "$work/times"
}
echo
echo "## Archiving one 16 MiB segment (median, min-max of $segments real pgbench segments)"
echo "| archiver | archived | wall | CPU (user+sys) | peak RSS |"
echo "|---|---|---|---|---|"
push_each "backupctl wal-push (local, zstd -3, age)" "$bc" wal-push -q --repo "$work/repo-push" -r "$recipient"
push_each "pgbackrest archive-push (local, zstd -3, AES)" pgbackrest --config="$work/pgbackrest.conf" --stanza=bench archive-push
# (archive-push --archive-async reads pg_wal/archive_status itself: it is
# measured from PostgreSQL, in the lag test below.)

# Barman's own archive_command: ssh to the Barman host, `barman put-wal`.
# The host side runs under /usr/bin/time (a forced command), so its CPU
# is counted beside the client's.
if [[ $(id -u) -eq 0 ]] && command -v sshd >/dev/null && command -v barman-wal-archive >/dev/null; then
  bb=$work/barman
  mkdir -p "$bb/home" "$bb/bin" /run/sshd
  ssh-keygen -q -t ed25519 -f "$bb/hostkey" -N ''
  ssh-keygen -q -t ed25519 -f "$bb/pgkey" -N ''
  : >"$bb/host-times"
  printf 'command="/usr/bin/time -a -o %s -f \x27%%e %%U %%S %%M\x27 sh -c \\"$SSH_ORIGINAL_COMMAND\\"" %s\n' \
    "$bb/host-times" "$(cat "$bb/pgkey.pub")" >"$bb/authorized_keys"
  cat >"$bb/barman.conf" <<CONF
[barman]
barman_user = barman
barman_home = $bb/home
log_file = $bb/home/barman.log
log_level = WARNING
[bench]
description = bench
conninfo = host=$work port=$port user=postgres dbname=postgres
backup_method = postgres
archiver = on
CONF
  cat >"$bb/ssh_config" <<CONF
Host 127.0.0.1
  Port 2222
  IdentityFile $bb/pgkey
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
CONF
  printf '#!/bin/sh\nexec /usr/bin/ssh -F %s "$@"\n' "$bb/ssh_config" >"$bb/bin/ssh"
  chmod 755 "$bb" "$bb/bin/ssh"; chmod 644 "$bb"/*.conf "$bb/ssh_config" "$bb/authorized_keys"
  chown postgres "$bb/pgkey"; chown -R barman "$bb/home" "$bb/host-times"
  grep -q '^barman:!' /etc/shadow && usermod -p '*' barman
  /usr/sbin/sshd -p 2222 -h "$bb/hostkey" -o ListenAddress=127.0.0.1 -o PidFile="$work/sshd.pid" \
    -o AuthorizedKeysFile="$bb/authorized_keys" -o StrictModes=no -o PasswordAuthentication=no -o UsePAM=no
  push_each "barman-wal-archive (ssh to barman put-wal; client side)" \
    env PATH="$bb/bin:$PATH" barman-wal-archive -c "$bb/barman.conf" 127.0.0.1 bench
  summary "(its Barman host side: barman put-wal under sshd)" "$bb/host-times"
else
  echo "| (barman-wal-archive skipped: needs root, sshd and barman-cli) | | | | |"
fi
if [[ -f target/test-services/env ]] && source target/test-services/env && [[ -n ${SHIPSHAPE_TEST_S3_ENDPOINT:-} ]]; then
  export AWS_ACCESS_KEY_ID=$SHIPSHAPE_TEST_S3_KEY_ID AWS_SECRET_ACCESS_KEY=$SHIPSHAPE_TEST_S3_SECRET \
    AWS_REGION=$SHIPSHAPE_TEST_S3_REGION AWS_DEFAULT_REGION=$SHIPSHAPE_TEST_S3_REGION \
    AWS_ENDPOINT_URL=$SHIPSHAPE_TEST_S3_ENDPOINT AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
  prefix=pitr-bench-$$
  "$bc" init --repo "s3://$SHIPSHAPE_TEST_S3_BUCKET/$prefix/shipshape" >/dev/null
  push_each "backupctl wal-push (Garage S3, zstd -3, age)" env AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
    AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" AWS_REGION="$AWS_REGION" AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL" \
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    "$bc" wal-push -q --repo "s3://$SHIPSHAPE_TEST_S3_BUCKET/$prefix/shipshape" -r "$recipient"
  push_each "barman-cloud-wal-archive (Garage S3, gzip, no client-side encryption)" env \
    AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
    AWS_DEFAULT_REGION="$AWS_REGION" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    barman-cloud-wal-archive --endpoint-url "$AWS_ENDPOINT_URL" --gzip \
    "s3://$SHIPSHAPE_TEST_S3_BUCKET/$prefix/barman" bench
else
  echo "| (S3 rows skipped: scripts/test-services.sh start garage) | | | | |"
fi

# Archive lag under pgbench -c 8.
lag() { # name archive_command
  set_archive "$2"
  psql_ "SELECT pg_switch_wal()" >/dev/null; sleep 2
  as_pg "$pgbin/pgbench" -h "$work" -p $port -U postgres -c 8 -j 2 -T "$lag_seconds" -n postgres >"$work/pgbench.out" 2>&1 &
  local bench=$! samples=()
  while kill -0 $bench 2>/dev/null; do
    samples+=("$(psql_ "SELECT pg_walfile_name(pg_current_wal_lsn()) || ' ' || coalesce(last_archived_wal, '') FROM pg_stat_archiver")")
    sleep 0.5
  done
  local tps; tps=$(awk '/^tps/ {print int($3); exit}' "$work/pgbench.out")
  printf '%s\n' "${samples[@]}" | python3 -c '
import sys, statistics
name, tps = sys.argv[1], sys.argv[2]
seg = lambda n: int(n[8:16], 16) * 256 + int(n[16:24], 16)
lags = []
for line in sys.stdin:
    parts = line.split()
    if len(parts) == 2 and len(parts[1]) >= 24:
        lags.append(max(0, seg(parts[0]) - seg(parts[1][:24]) - 1))
print(f"| {name} | {tps} | {statistics.median(lags):.0f} | {max(lags)} | {len(lags)} |")
' "$1" "$tps"
}
echo
echo "## Archive lag under pgbench -c 8 -j 2 for ${lag_seconds}s (segments written but not yet archived)"
echo "| archiver | pgbench tps | median lag | max lag | samples |"
echo "|---|---|---|---|---|"
lag "backupctl wal-push" "$bc wal-push -q --repo $work/repo-base -r $recipient %p"
lag "pgbackrest archive-push" "pgbackrest --config=$work/pgbackrest.conf --stanza=bench archive-push %p"
lag "pgbackrest archive-push --archive-async" "pgbackrest --config=$work/pgbackrest.conf --stanza=bench --archive-async --process-max=2 archive-push %p"

# Physical base backups of the same cluster.
timed() { # name command...: wall and peak RSS of one command
  local name=$1; shift
  /usr/bin/time -f '%e %M' -o "$work/t" "$@" >/dev/null 2>"$work/err" || { echo "$name failed: $(tail -3 "$work/err")" >&2; return; }
  read -r wall rss <"$work/t"
  printf '| %s | %.1f s | %.1f MiB |\n' "$name" "$wall" "$(echo "$rss / 1024" | bc -l)"
}
echo
echo "## Physical base backup of $(psql_ "SELECT pg_size_pretty(pg_database_size('postgres'))") (pgbench scale $scale)"
echo "| tool | wall | peak RSS |"
echo "|---|---|---|"
set_archive "$bc wal-push -q --repo $work/repo-base -r $recipient %p"
timed "backupctl backup --physical (zstd -3, age)" "$bc" backup -q --repo "$work/repo-base" -r "$recipient" --physical \
  "postgres://postgres@/postgres?host=$work&port=$port"
cat >"$work/pipe.sh" <<SH
set -o pipefail
$pgbin/pg_basebackup -h $work -p $port -U postgres -Ft -D - -X none -c fast 2>/dev/null | zstd -3 -T0 -q | age -r $recipient > $work/base.tar.zst.age
SH
timed "pg_basebackup -Ft -D - \\| zstd -3 -T0 \\| age (peak of the biggest process)" bash "$work/pipe.sh"
set_archive "pgbackrest --config=$work/pgbackrest.conf --stanza=bench archive-push %p"
timed "pgbackrest backup --type=full (zstd -3, AES, process-max 1)" "${as_pg_prefix[@]}" pgbackrest --config="$work/pgbackrest.conf" --stanza=bench --type=full backup
