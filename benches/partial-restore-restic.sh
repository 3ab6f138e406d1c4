#!/usr/bin/env bash
# restic beside benches/partial-restore.sh: the same shape of backup (SIZE
# MiB of 1 MiB files of noise, 64 to a directory) in a restic repository on
# the same Garage, then `restic ls`, a one-file `restic restore --include`
# and a full `restic restore`, each without restic's local cache (as on a
# machine restoring after a loss). Bytes the server sent, counted by
# benches/count-proxy.py, HTTP included.
#
#   benches/partial-restore-restic.sh [SIZE]     # 4096 MiB by default
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-4096}
# shellcheck disable=SC1091
source target/test-services/env
command -v restic >/dev/null || { echo "restic is missing: scripts/install-deps.sh --bench" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree=$work/tree
for ((i = 0; i < size; i++)); do
  d=$(printf '%s/d%03d' "$tree" $((i / 64)))
  mkdir -p "$d"
  head -c 1048576 /dev/urandom >"$(printf '%s/f%04d.bin' "$d" $((i % 64)))"
done
coproc PROXY { python3 benches/count-proxy.py "${SHIPSHAPE_TEST_S3_ENDPOINT#http://}"; }
read -r port <&"${PROXY[0]}"
count() { echo >&"${PROXY[1]}"; read -r n <&"${PROXY[0]}"; echo "$n"; }
export AWS_ACCESS_KEY_ID=$SHIPSHAPE_TEST_S3_KEY_ID AWS_SECRET_ACCESS_KEY=$SHIPSHAPE_TEST_S3_SECRET
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$work/cache
repo=s3:http://127.0.0.1:$port/$SHIPSHAPE_TEST_S3_BUCKET/bench-restic-$RANDOM$RANDOM
r() { restic -r "$repo" -o s3.region="$SHIPSHAPE_TEST_S3_REGION" -o s3.bucket-lookup=path "$@"; }
r init -q
r backup -q "$tree"
count >/dev/null
r ls --no-cache latest >/dev/null
ls=$(count)
half=$((size / 2))
pick=$(printf '%s/d%03d/f%04d.bin' "$tree" $((half / 64)) $((half % 64)))
r restore --no-cache -q latest --include "$pick" --target "$work/one"
one=$(count)
cmp "$work/one$pick" "$pick"
r restore --no-cache -q latest --target "$work/full"
full=$(count)
stored=$(r stats --no-cache --mode raw-data --json latest | python3 -c 'import json,sys; print(json.load(sys.stdin)["total_size"])')
echo "restic on Garage: $size MiB backup, $stored B stored: ls read $ls B, one 1 MiB file read $one B, full restore read $full B"
