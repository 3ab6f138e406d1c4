#!/usr/bin/env bash
# Bytes read from S3 (Garage) by `ls` and by a one-file restore of a
# directory backup, beside a full restore: counted by a proxy between
# Shipshape and the server, HTTP included. The backup is SIZE MiB of
# 1 MiB files of noise (nothing compresses), 64 to a directory.
#
#   benches/partial-restore.sh            # 4096 MiB
#   benches/partial-restore.sh 1024       # another size
#
# Needs Garage: scripts/test-services.sh start garage.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-4096}
[[ -f target/test-services/env ]] || { echo "run scripts/test-services.sh start garage first" >&2; exit 1; }
# shellcheck disable=SC1091
source target/test-services/env
for round in 1 2 3; do
  SHIPSHAPE_PARTS_MIB=$size cargo test --release --quiet -p backup-core --all-features --test it \
    ls_and_one_file_read_only_the_index_and_its_frames -- --nocapture 2>&1 |
    grep '^parts on Garage' | sed "s/^/round $round: /"
done
