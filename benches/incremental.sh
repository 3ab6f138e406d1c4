#!/usr/bin/env bash
# Incremental directory backups, measured side by side with restic.
#
#   benches/incremental.sh [--size MiB] [--percent N] [--workdir DIR]
#
# Makes a ~SIZE MiB corpus (default 1024; see benches/src/corpus.rs), backs
# it up in full with backupctl and with restic, changes N% (default 1) of
# its files (every 100/N-th file in sorted order gets a line appended),
# then makes an incremental backup with `backupctl backup --parent latest`
# and a second restic snapshot. Prints wall time and stored bytes of each,
# and restores backupctl's chain and compares it with the tree (diff -r).
# restic (from Debian) compresses with zstd "auto" and deduplicates; both
# tools encrypt.
set -euo pipefail

size=1024 percent=1 work=${TMPDIR:-/tmp}/shipshape-incremental
while (($#)); do
  case $1 in
    --size) size=$2; shift 2 ;;
    --percent) percent=$2; shift 2 ;;
    --workdir) work=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh --bench
if ! command -v restic >/dev/null; then
  echo "installing restic (Debian package)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null
fi
cargo build --release --locked --quiet -p backupctl -p shipshape-benches --bin backupctl --bin corpus
bctl=$root/target/release/backupctl
mkdir -p "$work"
work=$(cd "$work" && pwd)
rm -rf "$work/src" "$work/repo" "$work/index" "$work/restic" "$work/restored" "$work/home"
if [[ ! -e $work/corpus/.complete ]]; then
  rm -rf "$work/corpus"
  "$root/target/release/corpus" "$work/corpus" "$size"
  touch "$work/corpus/.complete"
fi
cp -a "$work/corpus" "$work/src"
rm -f "$work/src/.complete"
export HOME=$work/home RESTIC_PASSWORD=shipshape-bench RESTIC_REPOSITORY=$work/restic
mkdir -p "$HOME"
sync

# Runs a command, prints its wall seconds.
timed() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
stored() { # backupctl manifest JSON on stdin -> stored bytes
  python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["sizes"]["stored"])'
}
bytes() { du -sb "$1" | cut -f1; }

b_full=$(timed "$bctl" backup "$work/src" --repo "$work/repo" --name bench --index-dir "$work/index" -q)
b_full_size=$("$bctl" list --repo "$work/repo" --json | stored)
restic init -q >/dev/null
r_full=$(timed restic backup -q "$work/src")
r_full_size=$(bytes "$work/restic")

files=$(find "$work/src" -type f | sort)
total=$(wc -l <<<"$files")
step=$((100 / percent))
changed=0
while read -r f; do
  echo "changed $(date +%s%N)" >>"$f"
  changed=$((changed + 1))
done < <(awk -v s="$step" 'NR % s == 0' <<<"$files")
sync

b_inc=$(timed "$bctl" backup "$work/src" --repo "$work/repo" --name bench --index-dir "$work/index" --parent latest -q)
b_inc_size=$("$bctl" list --repo "$work/repo" --json | stored)
r_inc=$(timed restic backup -q "$work/src")
r_inc_size=$(($(bytes "$work/restic") - r_full_size))

"$bctl" restore latest --repo "$work/repo" --target "$work/restored" -q
diff -r "$work/src" "$work/restored" >/dev/null && check="restored chain identical (diff -r)" || check="RESTORED CHAIN DIFFERS"

pct() { echo "scale=1; 100 * $1 / $2" | bc; }
echo
echo "corpus: $size MiB, $total files; changed $changed files ($percent%)"
echo
echo "| tool | full | full stored | incremental | of full time | incremental stored | of full size |"
echo "|---|---|---|---|---|---|---|"
printf '| backupctl | %.2f s | %s | %.2f s | %s%% | %s | %s%% |\n' "$b_full" "$(numfmt --to=iec-i --suffix=B "$b_full_size")" \
  "$b_inc" "$(pct "$b_inc" "$b_full")" "$(numfmt --to=iec-i --suffix=B "$b_inc_size")" "$(pct "$b_inc_size" "$b_full_size")"
printf '| restic %s | %.2f s | %s | %.2f s | %s%% | %s | %s%% |\n' "$(restic version | cut -d' ' -f2)" "$r_full" \
  "$(numfmt --to=iec-i --suffix=B "$r_full_size")" "$r_inc" "$(pct "$r_inc" "$r_full")" \
  "$(numfmt --to=iec-i --suffix=B "$r_inc_size")" "$(pct "$r_inc_size" "$r_full_size")"
echo
echo "$check"
