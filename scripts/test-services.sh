#!/usr/bin/env bash
# Installs, starts and stops the real servers Shipshape's tests talk to.
#
#   scripts/test-services.sh start   # install (once) and start; prints the env file path
#   scripts/test-services.sh start postgres   # (or dns, garage, docker, pg-container) just that one
#   scripts/test-services.sh stop    # stop what `start` started
#   scripts/test-services.sh env     # print the environment the tests read
#
# Servers (all on 127.0.0.1, data under $SHIPSHAPE_SERVICES_DIR, default
# target/test-services):
#   Garage (S3)   http://127.0.0.1:13900, region "garage", bucket "shipshape-test",
#                 a fixed test key; built once with `cargo install garage`
#                 (~25 minutes on 2 cores) and reused afterwards.
#   PostgreSQL    postgres://postgres:shipshape-test@127.0.0.1:55432/postgres, the
#                 newest server in /usr/lib/postgresql (Debian's `postgresql`
#                 package, installed by scripts/install-deps.sh); password
#                 logins over TCP, TLS on with a throwaway CA
#                 (SHIPSHAPE_TEST_PG_CA), fsync off, pg_stat_statements
#                 preloaded (tests create the extension where they need
#                 it). Run as the `postgres` user when started by root
#                 (initdb refuses root).
#   PowerDNS      Authoritative Server with the sqlite backend: DNS on
#                 127.0.0.1:15353, HTTP API on http://127.0.0.1:18081 (key
#                 shipshape-test-pdns); tests create their own zones.
#   Knot DNS      DNS on 127.0.0.1:15354 taking RFC 2136 updates and AXFR
#                 signed with the TSIG key shipshape-test (hmac-sha256, a
#                 fixed test secret) for the zones k1.test .. k4.test, and
#                 broken.test, whose zone file does not load (SERVFAIL).
#   Docker        the machine's Docker Engine, and an image
#                 shipshape-test/busybox imported from Debian's busybox-static.
#   PostgreSQL    container shipshape-test-pg: PostgreSQL 15 from Debian's
#   in a          packages (debootstrap, docker import), socket only, no
#   container     published port; tests reach it through exec alone.
#
# The tests read target/test-services/env (sourced by scripts/test.sh); a
# test whose server is not running fails under CI=true naming this script.
set -euo pipefail
cd "$(dirname "$0")/.."

GARAGE_VERSION=2.5.0
dir=${SHIPSHAPE_SERVICES_DIR:-$PWD/target/test-services}
envfile=$dir/env

# A fixed key pair: test configuration is deterministic and nothing secret
# is at stake (the server only listens on loopback).
KEY_ID=GK0000000000000000000000a1
KEY_SECRET=5a1e000000000000000000000000000000000000000000000000000000000001
BUCKET=shipshape-test

garage_bin() {
  if command -v garage >/dev/null 2>&1 && garage --version 2>/dev/null | grep -qF "$GARAGE_VERSION"; then
    command -v garage
    return
  fi
  local root=${CARGO_HOME:-$HOME/.cargo}
  if [[ -x $root/bin/garage ]] && "$root/bin/garage" --version 2>/dev/null | grep -qF "$GARAGE_VERSION"; then
    echo "$root/bin/garage"
    return
  fi
  echo "building Garage $GARAGE_VERSION with cargo install (once; ~25 minutes on 2 cores)" >&2
  cargo install --locked --quiet garage --version "$GARAGE_VERSION" >&2
  echo "$root/bin/garage"
}

start_garage() {
  local g; g=$(garage_bin)
  local gd=$dir/garage
  if [[ -e $gd/pid ]] && kill -0 "$(cat "$gd/pid")" 2>/dev/null; then
    echo "Garage already running (pid $(cat "$gd/pid"))" >&2
    return
  fi
  rm -rf "$gd"
  mkdir -p "$gd/meta" "$gd/data"
  cat >"$gd/garage.toml" <<TOML
metadata_dir = "$gd/meta"
data_dir = "$gd/data"
db_engine = "sqlite"
replication_factor = 1
# Backups arrive encrypted, so incompressible: Garage's default zstd
# compression of every block would only burn CPU (on this 2-core machine,
# CPU the client's own compression needs).
compression_level = "none"
rpc_bind_addr = "127.0.0.1:13901"
rpc_public_addr = "127.0.0.1:13901"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:13900"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:13903"
admin_token = "shipshape-test-admin"
TOML
  local c=(-c "$gd/garage.toml")
  # setsid: the server outlives this script and is not killed with its
  # process group.
  setsid "$g" "${c[@]}" server >"$gd/garage.log" 2>&1 < /dev/null &
  echo $! >"$gd/pid"
  local deadline=$((SECONDS + 30))
  until "$g" "${c[@]}" status >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      echo "Garage did not start within 30 s; its log:" >&2
      cat "$gd/garage.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  local node; node=$("$g" "${c[@]}" node id -q | cut -d@ -f1)
  "$g" "${c[@]}" layout assign -z dc1 -c 10G "$node" >/dev/null
  "$g" "${c[@]}" layout apply --version 1 >/dev/null
  "$g" "${c[@]}" bucket create "$BUCKET" >/dev/null
  "$g" "${c[@]}" key import --yes -n shipshape-test "$KEY_ID" "$KEY_SECRET" >/dev/null
  "$g" "${c[@]}" bucket allow --read --write --owner "$BUCKET" --key shipshape-test >/dev/null
  echo "Garage $GARAGE_VERSION on http://127.0.0.1:13900, bucket $BUCKET" >&2
}

stop_garage() {
  local gd=$dir/garage
  if [[ -e $gd/pid ]]; then
    kill "$(cat "$gd/pid")" 2>/dev/null || true
    rm -f "$gd/pid"
  fi
}

PG_PORT=55432
PG_PASSWORD=shipshape-test

pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [[ -z $bin ]]; then
    echo "no PostgreSQL server in /usr/lib/postgresql: run scripts/install-deps.sh" >&2
    exit 1
  fi
  echo "$bin"
}

# Runs a command as the server's owner: `postgres` when we are root.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_dir() {
  # The server's owner must reach its files: under a root-owned checkout
  # that may be impossible, so a root run keeps them in /tmp.
  if [[ $(id -u) -eq 0 ]]; then echo "${TMPDIR:-/tmp}/shipshape-test-postgres"; else echo "$dir/postgres"; fi
}

start_postgres() {
  local bin pd; bin=$(pg_bin); pd=$(pg_dir)
  if [[ -e $pd/data/postmaster.pid ]] && as_pg "$bin/pg_ctl" -D "$pd/data" status >/dev/null 2>&1; then
    echo "PostgreSQL already running ($pd)" >&2
    return
  fi
  rm -rf "$pd"
  mkdir -p "$pd/tls"
  # A throwaway CA and a server certificate for localhost and 127.0.0.1.
  (
    cd "$pd/tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=shipshape test CA" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile san.ext -out server.crt 2>/dev/null
    chmod 600 server.key ca.key
  )
  printf '%s\n' "$PG_PASSWORD" >"$pd/pwfile"
  if [[ $(id -u) -eq 0 ]]; then chown -R postgres:postgres "$pd"; fi
  chmod 700 "$pd"
  as_pg "$bin/initdb" -D "$pd/data" -U postgres --pwfile="$pd/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 -N >"$pd/initdb.log" 2>&1 || {
    cat "$pd/initdb.log" >&2; exit 1; }
  as_pg "$bin/pg_ctl" -D "$pd/data" -l "$pd/server.log" -w -t 30 -o "\
    -c listen_addresses=127.0.0.1 -p $PG_PORT -k $pd \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
    -c shared_buffers=256MB -c max_connections=60 \
    -c shared_preload_libraries=pg_stat_statements \
    -c ssl=on -c ssl_cert_file=$pd/tls/server.crt -c ssl_key_file=$pd/tls/server.key" \
    start >/dev/null || { cat "$pd/server.log" >&2; exit 1; }
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT ($pd)" >&2
}

stop_postgres() {
  local bin pd; pd=$(pg_dir)
  [[ -e $pd/data/postmaster.pid ]] || return 0
  bin=$(pg_bin)
  as_pg "$bin/pg_ctl" -D "$pd/data" -m fast -w stop >/dev/null 2>&1 || true
}

PDNS_DNS_PORT=15353
PDNS_API_PORT=18081
PDNS_API_KEY=shipshape-test-pdns

start_powerdns() {
  local pd=$dir/powerdns
  if [[ -e $pd/pid ]] && kill -0 "$(cat "$pd/pid")" 2>/dev/null; then
    echo "PowerDNS already running (pid $(cat "$pd/pid"))" >&2
    return
  fi
  command -v pdns_server >/dev/null || { echo "pdns_server is missing: run scripts/install-deps.sh" >&2; exit 1; }
  rm -rf "$pd"; mkdir -p "$pd"
  sqlite3 "$pd/pdns.sqlite3" < /usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql
  cat >"$pd/pdns.conf" <<CONF
launch=gsqlite3
gsqlite3-database=$pd/pdns.sqlite3
local-address=127.0.0.1
local-port=$PDNS_DNS_PORT
socket-dir=$pd
daemon=no
guardian=no
disable-syslog=yes
security-poll-suffix=
api=yes
api-key=$PDNS_API_KEY
webserver=yes
webserver-address=127.0.0.1
webserver-port=$PDNS_API_PORT
webserver-allow-from=127.0.0.0/8
default-soa-content=ns1.@ hostmaster.@ 0 10800 3600 604800 60
# Answers change the moment the API changes them (no packet cache).
cache-ttl=0
negquery-cache-ttl=0
query-cache-ttl=0
zone-cache-refresh-interval=0
CONF
  setsid pdns_server --config-dir="$pd" >"$pd/pdns.log" 2>&1 </dev/null &
  echo $! >"$pd/pid"
  local deadline=$((SECONDS + 15))
  until curl -fsS -H "X-API-Key: $PDNS_API_KEY" "http://127.0.0.1:$PDNS_API_PORT/api/v1/servers/localhost" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      echo "PowerDNS did not start within 15 s; its log:" >&2; cat "$pd/pdns.log" >&2; exit 1
    fi
    sleep 0.1
  done
  echo "PowerDNS $(pdns_server --version 2>&1 | grep -o 'Server [0-9.]*' | head -1) on 127.0.0.1:$PDNS_DNS_PORT, API :$PDNS_API_PORT" >&2
}

KNOT_PORT=15354
KNOT_KEY=shipshape-test
# A fixed test secret (base64 of 32 bytes): nothing secret is at stake.
KNOT_SECRET=c2hpcHNoYXBlLXRlc3QtdHNpZy1zZWNyZXQtMzJieXQ=
KNOT_ZONES="k1.test k2.test k3.test k4.test"

start_knot() {
  local kd=$dir/knot
  if [[ -e $kd/knot.pid ]] && kill -0 "$(cat "$kd/knot.pid")" 2>/dev/null; then
    echo "Knot already running (pid $(cat "$kd/knot.pid"))" >&2
    return
  fi
  command -v knotd >/dev/null || { echo "knotd is missing: run scripts/install-deps.sh" >&2; exit 1; }
  rm -rf "$kd"; mkdir -p "$kd/zones" "$kd/db"
  {
    cat <<CONF
server:
    rundir: "$kd"
    listen: 127.0.0.1@$KNOT_PORT
database:
    storage: "$kd/db"
key:
  - id: $KNOT_KEY
    algorithm: hmac-sha256
    secret: $KNOT_SECRET
acl:
  - id: shipshape
    address: 127.0.0.0/8
    key: $KNOT_KEY
    action: [update, transfer]
template:
  - id: default
    storage: "$kd/zones"
    file: "%s.zone"
zone:
CONF
    for z in $KNOT_ZONES broken.test; do printf '  - domain: %s\n    acl: shipshape\n' "$z"; done
  } >"$kd/knot.conf"
  for z in $KNOT_ZONES; do
    printf '$ORIGIN %s.\n$TTL 60\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 127.0.0.1\n' "$z" >"$kd/zones/$z.zone"
  done
  printf 'this is not a zone file\n' >"$kd/zones/broken.test.zone"
  setsid knotd -c "$kd/knot.conf" >"$kd/knot.log" 2>&1 </dev/null &
  local deadline=$((SECONDS + 15))
  until dig +short +time=1 +tries=1 -p "$KNOT_PORT" @127.0.0.1 SOA k1.test 2>/dev/null | grep -q hostmaster; do
    if ((SECONDS > deadline)); then
      echo "Knot did not start within 15 s; its log:" >&2; cat "$kd/knot.log" >&2; exit 1
    fi
    sleep 0.1
  done
  echo "Knot DNS $(knotd --version | awk '{print $NF}') on 127.0.0.1:$KNOT_PORT, zones $KNOT_ZONES" >&2
}

stop_dns() {
  local f
  for f in "$dir/powerdns/pid" "$dir/knot/knot.pid"; do
    [[ -e $f ]] && { kill "$(cat "$f")" 2>/dev/null || true; rm -f "$f"; }
  done
  return 0
}

IMAGE=shipshape-test/busybox:latest

# The Docker tests' image: Debian's static busybox and its applet links,
# imported locally (no registry is reachable). Built once, reused.
build_image() {
  if ! docker version >/dev/null 2>&1; then
    echo "the Docker Engine is not reachable (is dockerd running, and may this user use it?)" >&2
    exit 1
  fi
  docker image inspect "$IMAGE" >/dev/null 2>&1 && { echo "image $IMAGE present" >&2; return; }
  local bb root
  bb=$(command -v busybox) || { echo "busybox is missing: run scripts/install-deps.sh" >&2; exit 1; }
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/data"
  cp "$bb" "$root/bin/busybox"
  chroot "$root" /bin/busybox --install -s /bin
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
  rm -rf "$root"
  echo "built image $IMAGE" >&2
}

PG_IMAGE=shipshape-test/postgres:15
PG_CONTAINER=shipshape-test-pg

# A PostgreSQL server in a container, as compose setups run it: Debian's
# postgresql package in a root file system made by debootstrap from the
# machine's Debian mirror and imported (nothing can be pulled). It listens
# on its Unix socket only: no port is published, so the tests reach it
# through the Engine API's exec alone. Built once (~1-2 minutes), reused.
build_pg_image() {
  docker image inspect "$PG_IMAGE" >/dev/null 2>&1 && { echo "image $PG_IMAGE present" >&2; return; }
  command -v debootstrap >/dev/null || { echo "debootstrap is missing: run scripts/install-deps.sh" >&2; exit 1; }
  local root mirror
  mirror=$(grep -hs '^URIs:' /etc/apt/sources.list.d/debian.sources | head -1 | awk '{print $2}')
  mirror=${mirror:-http://deb.debian.org/debian}
  root=$(mktemp -d)
  debootstrap --variant=minbase --include=postgresql bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
    tail -20 "$root.log" >&2; rm -rf "$root" "$root.log"; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/locale "$root.log"
  local bin; bin=$(ls -d "$root"/usr/lib/postgresql/*/bin | head -1); bin=${bin#"$root"}
  cat >"$root/usr/local/bin/pg-entrypoint" <<SH
#!/bin/sh
# Makes the cluster on first start (trust over the socket: the container
# has no port), then runs the server as postgres in the foreground.
set -e
export PGDATA=/var/lib/postgresql/data
mkdir -p "\$PGDATA" /run/postgresql
chown postgres:postgres "\$PGDATA" /run/postgresql
if [ ! -s "\$PGDATA/PG_VERSION" ]; then
  setpriv --reuid=postgres --regid=postgres --init-groups $bin/initdb -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups $bin/postgres -c listen_addresses= -c fsync=off
SH
  chmod 755 "$root/usr/local/bin/pg-entrypoint"
  tar -C "$root" -c . | docker import -c 'CMD ["/usr/local/bin/pg-entrypoint"]' \
    -c "ENV PATH=$bin:/usr/local/bin:/usr/bin:/bin" - "$PG_IMAGE" >/dev/null
  rm -rf "$root"
  echo "built image $PG_IMAGE" >&2
}

start_pg_container() {
  build_pg_image
  if [[ $(docker inspect -f '{{.State.Running}}' "$PG_CONTAINER" 2>/dev/null) != true ]]; then
    docker rm -f "$PG_CONTAINER" >/dev/null 2>&1 || true
    docker run -d --name "$PG_CONTAINER" --label shipshape-test=1 "$PG_IMAGE" >/dev/null
  fi
  local i
  for i in $(seq 1 60); do
    docker exec -u postgres "$PG_CONTAINER" pg_isready -q 2>/dev/null && break
    sleep 0.5
  done
  docker exec -u postgres "$PG_CONTAINER" pg_isready -q || {
    docker logs "$PG_CONTAINER" >&2; exit 1; }
  echo "PostgreSQL in container $PG_CONTAINER ($PG_IMAGE), no published port" >&2
}

stop_pg_container() {
  docker rm -f "$PG_CONTAINER" >/dev/null 2>&1 || true
}

write_env() {
  mkdir -p "$dir"
  cat >"$envfile" <<ENV
export SHIPSHAPE_TEST_S3_ENDPOINT=http://127.0.0.1:13900
export SHIPSHAPE_TEST_S3_BUCKET=$BUCKET
export SHIPSHAPE_TEST_S3_REGION=garage
export SHIPSHAPE_TEST_S3_KEY_ID=$KEY_ID
export SHIPSHAPE_TEST_S3_SECRET=$KEY_SECRET
export SHIPSHAPE_TEST_PG_URL=postgres://postgres:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres
export SHIPSHAPE_TEST_PG_CA=$(pg_dir)/tls/ca.crt
export SHIPSHAPE_TEST_PG_BIN=$(pg_bin)
export SHIPSHAPE_TEST_DOCKER_IMAGE=$IMAGE
export SHIPSHAPE_TEST_PG_CONTAINER=$PG_CONTAINER
export SHIPSHAPE_TEST_PDNS_DNS=127.0.0.1:$PDNS_DNS_PORT
export SHIPSHAPE_TEST_PDNS_API=http://127.0.0.1:$PDNS_API_PORT
export SHIPSHAPE_TEST_PDNS_API_KEY=$PDNS_API_KEY
export SHIPSHAPE_TEST_KNOT_DNS=127.0.0.1:$KNOT_PORT
export SHIPSHAPE_TEST_KNOT_KEY=$KNOT_KEY
export SHIPSHAPE_TEST_KNOT_SECRET=$KNOT_SECRET
export SHIPSHAPE_TEST_KNOT_ZONES="$KNOT_ZONES"
ENV
}

case ${1:-} in
  start)
    case ${2:-all} in
      all)
        # The container's image is built from Debian's packages meanwhile.
        start_pg_container & pgc=$!
        start_postgres; start_powerdns; start_knot; start_garage; build_image
        wait "$pgc" || { echo "the PostgreSQL container did not start" >&2; exit 1; } ;;
      postgres) start_postgres ;;
      dns) start_powerdns; start_knot ;;
      garage) start_garage ;;
      docker) build_image ;;
      pg-container) start_pg_container ;;
      *) echo "unknown service ${2}: postgres, dns, garage, docker or pg-container" >&2; exit 2 ;;
    esac
    write_env; echo "$envfile" ;;
  stop) stop_garage; stop_postgres; stop_dns; stop_pg_container ;;
  env) write_env; cat "$envfile" ;;
  *) sed -n '2,36p' "$0"; exit 2 ;;
esac
